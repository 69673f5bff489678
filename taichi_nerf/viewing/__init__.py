"""What both viewers share, with no window or browser in it: the progressive view of the
field from the user's camera (``view``: resolution levels, adaptive refinement), its
scheduling (``schedule``: refinement levels, per-strip render cost, the frame's time
budget), the split of each frame between training and rendering (``timeshare``), the
keyframed camera path (``keyframes``) and the actions both offer (``actions``: pause,
checkpoint, keyframes, videos). The GGUI window (``taichi_nerf.gui``) and the browser
viewer (``taichi_nerf.viewer``) are front ends over these."""

VIDEO_FRAMES = 36  # the videos both panels record (orbit, keyframe path): short, as they render while training
