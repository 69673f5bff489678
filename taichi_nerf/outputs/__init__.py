"""What a trained field makes: renders of a checkpoint's views and paths
(``from_checkpoint``), videos (``video``; the default one for the capture: ``default_video``,
from the choice ``rendering.video_route`` makes), camera paths, depth colouring, PSNR/SSIM,
mesh and point-cloud export."""
