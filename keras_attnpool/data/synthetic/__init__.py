"""The built-in demo data: cluttered digits (`cluttered_digits`), written as an HMDB51-style
video dataset (`demo`) so that the demo runs the real dataset's code path.
"""
