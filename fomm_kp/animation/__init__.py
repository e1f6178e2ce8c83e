"""Motion transfer with a trained FOMM: the keypoint-transfer maths and the Animator (transfer), and
animating an image with a driving video at the source's resolution (render)."""
