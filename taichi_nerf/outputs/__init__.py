"""What a trained field makes: renders of a checkpoint's views and paths
(``from_checkpoint``), videos and the route that suits the capture, camera paths, depth
colouring, PSNR/SSIM, mesh and point-cloud export."""
