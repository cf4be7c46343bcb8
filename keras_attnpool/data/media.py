"""The file extensions read as images and as videos (lower case, with the dot).

One list for every part of the package that decides by a file's name: the folder readers
(`datasets.image_folder`, `datasets.video_folder`) and `keras_attnpool.visualize_inputs`.
Compare with `os.path.splitext(name)[1].lower()`.
"""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp")
