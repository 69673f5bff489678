"""The viser server: opened before any data loads (a taken port or a missing viser refuses
the command before anything on disk changes), its connection callbacks writing to the
:class:`Inbox`, and the few calls the main thread makes on it (send a picture, move a
browser's camera, set the opening view)."""
import contextlib
import io
import math
import socket
import sys
import time

import numpy as np

from .camera import viser_pose
from .inbox import Inbox

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7007
DEFAULT_RESOLUTION = 512  # the longest side of the pictures sent (the panel's slider changes it)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
FAREWELL_S = 0.3  # stopping with a browser connected: time for the last messages to go out


class ViewerUnavailable(RuntimeError):
    """The browser viewer cannot start here (viser missing, a bad host or port); the message
    says what to do. The command line prints it as a user error (one line, status 2), as the
    window's GuiUnavailable."""


def require_viser():
    try:
        import viser
    except ImportError:
        raise ViewerUnavailable("the browser viewer needs viser: pip install 'taichi-nerf[viewer]'") from None
    return viser


def check_address(host: str, port: int) -> None:
    """Refuse a port out of range or a host that is not this machine's, before anything starts."""
    if not 0 <= int(port) <= 65535:
        raise ViewerUnavailable(f"--viewer-port must be between 1 and 65535 (0: any free port), got {port}")
    why = None
    try:  # an address viser cannot listen on makes it retry port after port, forever
        for family, kind, _, _, address in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
            try:
                with socket.socket(family, kind) as probe:
                    probe.bind((address[0], 0))
                return  # one of the name's addresses is this machine's (localhost: ::1 may be off)
            except OSError as exc:
                why = why or exc.strerror or exc
    except OSError as exc:
        why = exc.strerror or exc
    raise ViewerUnavailable(f"--viewer-host {host!r} is not an address of this machine ({why}); 127.0.0.1 "
                            "with an ssh tunnel, or 0.0.0.0 for every address")


class ViewerServer:
    """A running viser server and the inbox its callbacks fill."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, out=None):
        viser = require_viser()
        check_address(host, port)
        self.inbox = Inbox()
        self.host, self.requested_port = host, int(port)
        with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner: announce() says it better
            self.server = viser.ViserServer(host=host, port=int(port), label="taichi-nerf", verbose=False)
        self.port = int(self.server.get_port())
        self.server.on_client_connect(self._connected)
        self.server.on_client_disconnect(lambda client: self.inbox.disconnected(client.client_id))
        self.announce(out)

    def _connected(self, client) -> None:
        inbox, client_id = self.inbox, client.client_id
        inbox.connected(client_id)

        @client.camera.on_update
        def _moved(camera) -> None:
            inbox.camera(client_id, camera.wxyz, camera.position, camera.fov, camera.image_width,
                         camera.image_height)

    def announce(self, out=None) -> None:
        """Where to point a browser, and how to reach it from another machine."""
        out = out or sys.stdout
        if self.requested_port not in (0, self.port):
            print(f"viewer: port {self.requested_port} is taken; using port {self.port} instead", file=out)
        local = self.host in LOCAL_HOSTS
        address = self.address
        print(f"viewer: open http://{address}:{self.port} in a browser", file=out)
        print(f"viewer: from another machine, tunnel first: ssh -L {self.port}:{address}:{self.port} "
              f"{socket.gethostname()}  (then open http://localhost:{self.port})", file=out)
        if self.host in ("0.0.0.0", "::"):
            print(f"viewer: or, from a machine that reaches this one, open http://{socket.gethostname()}:{self.port} "
                  "(this machine's name or address)", file=out)
        if not local:
            print(f"viewer: listening on {self.host}, not only this machine: anyone who can reach port {self.port} "
                  "can watch, pause and save this run (the viewer has no password); the default 127.0.0.1 with "
                  "ssh -L is safer", file=out)
        out.flush()

    @property
    def address(self) -> str:
        """The address a browser on this machine (or the far end of an ssh tunnel) opens."""
        if self.host in ("::1", "::"):  # an IPv6 listener is not reached through 127.0.0.1
            return "[::1]"
        if self.host in LOCAL_HOSTS or self.host == "0.0.0.0":
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host  # one address: the only one that answers

    def remind(self, out=None) -> None:
        """The address again, below the run's start lines, which pushed :meth:`announce`'s off an
        ssh terminal's screen."""
        print(f"viewer: training in the browser at http://{self.address}:{self.port} (the tunnel: above)",
              file=out or sys.stdout, flush=True)

    def clients(self) -> dict:
        return self.server.get_clients()

    def set_opening_view(self, scene, fov_y: float) -> None:
        """Where a new browser starts (and "Reset View" returns): the GUI window's home view."""
        from ..rendering.scene import opening_angles
        from ..stages import cameras

        self.server.scene.set_up_direction(tuple(float(v) for v in scene.up))
        azimuth, elevation = opening_angles(scene)
        pose = cameras.orbit_poses(1, scene.orbit_radius, math.degrees(elevation), scene.center, scene.up,
                                   start_deg=math.degrees(azimuth))[0]
        initial = self.server.initial_camera
        initial.position = tuple(float(v) for v in pose[:3, 3])
        initial.look_at = tuple(float(v) for v in scene.center)
        initial.up = tuple(float(v) for v in scene.up)
        initial.fov = float(fov_y)

    def send(self, client_id: int, picture: np.ndarray, quality: int) -> bool:
        """A (H, W, 3) uint8 picture as the background of one browser's view, JPEG at
        ``quality``. False when that browser has gone."""
        client = self.clients().get(client_id)
        if client is None:
            return False
        client.scene.set_background_image(picture, format="jpeg", jpeg_quality=int(quality))
        return True

    def look_through(self, client_id: int, pose, fov_y: float, pivot) -> None:
        """Move a browser's camera to ``pose`` (OpenGL camera-to-world), orbiting ``pivot`` next."""
        client = self.clients().get(client_id)
        if client is None:
            return
        _, eye = viser_pose(pose)
        forward = -np.asarray(pose, dtype=np.float64)[:3, 2]
        depth = max(float(np.dot(np.asarray(pivot) - eye, forward)), 1e-2)
        with client.atomic():
            client.camera.fov = float(fov_y)
            client.camera.position = tuple(eye)
            client.camera.look_at = tuple(eye + depth * forward)

    def stop(self) -> None:
        if self.clients():  # the panel's last word (viewer/session.py) reaches the open pages before they are cut off
            self.server.flush()
            time.sleep(FAREWELL_S)
        self.server.stop()
