"""Human joints in the MPII 16-joint order: the one layout of every keypoint in the package.

MPII order (`MPII_JOINTS`): 0 r ankle, 1 r knee, 2 r hip, 3 l hip, 4 l knee, 5 l ankle,
6 pelvis, 7 thorax, 8 upper neck, 9 head top, 10 r wrist, 11 r elbow, 12 r shoulder,
13 l shoulder, 14 l elbow, 15 l wrist. Keypoint arrays are float32 (num_people, 16, 3)
holding x, y (pixels) and valid (1 or 0; invalid joints have x = y = 0). Readers
(`datasets.mpii`, `datasets.openpose`), records and pose targets (`input.heatmaps`) use
this order; `keras_attnpool.losses` reads `INVALID_JOINT` from here.
"""

MPII_JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis",
               "thorax", "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder",
               "l_shoulder", "l_elbow", "l_wrist")
NUM_JOINTS = len(MPII_JOINTS)

# MPII_FLIP[j] is the joint that joint j becomes in a left/right mirrored image: after
# flipping x, use `keypoints[..., MPII_FLIP, :]`.
MPII_FLIP = (5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10)

# Heatmap target value that marks a joint (a channel) as missing for a sample.
INVALID_JOINT = -1.0
