"""The browser viewer (``taichi-nerf train --viewer web``, ``gui --web``, ``view --ckpt``): the
GGUI window's twin for machines without a display, served by viser (the optional extra
``taichi-nerf[viewer]``). ``server`` opens viser and fills the ``inbox`` from its threads;
``session`` is the loop on the thread that owns Taichi (train, render, send, never at once),
over the shared progressive view and time-share of ``taichi_nerf.viewing``; ``panel`` the
browser's controls; ``camera`` viser's camera in this project's convention; ``launch`` the
sessions the command line (taichi_nerf/cli/) starts."""
