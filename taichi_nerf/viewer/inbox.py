"""What the browser asked for, as viser's threads deliver it: the latest camera and the
controls pressed since the main thread last looked. Taichi must only ever be called from the
thread that owns it (taichi-dev/taichi#2022), so viser's callbacks do nothing but write here,
under a lock; the main thread takes it all once per frame and does the work."""
import threading
import time
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class CameraMessage:
    client: int  # viser's client id: the frame goes back to the browser that moved
    wxyz: tuple
    position: tuple
    fov: float  # vertical, radians
    width: int  # canvas pixels
    height: int
    received: float  # time.perf_counter() when it arrived (latency: move -> first new frame)


@dataclass
class Mail:
    camera: CameraMessage | None  # the latest camera if it changed since the last take
    actions: list  # (name, value) in the order pressed
    clients: frozenset  # connected clients now
    moved: float | None  # when the last camera message came, any client (None: none yet)


@dataclass
class Inbox:
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _camera: CameraMessage | None = None
    _camera_new: bool = False
    _actions: list = field(default_factory=list)
    _clients: set = field(default_factory=set)
    _moved: float | None = None
    _cameras: dict = field(default_factory=dict)  # each connected browser's latest camera

    def camera(self, client: int, wxyz, position, fov: float, width: int, height: int) -> None:
        message = CameraMessage(int(client), tuple(float(v) for v in wxyz), tuple(float(v) for v in position),
                                float(fov), int(width), int(height), time.perf_counter())
        with self._lock:
            self._camera, self._camera_new, self._moved = message, True, message.received
            self._clients.add(int(client))
            self._cameras[int(client)] = message

    def press(self, name: str, value=None) -> None:
        with self._lock:
            self._actions.append((name, value))

    def connected(self, client: int) -> None:
        with self._lock:
            self._clients.add(int(client))

    def disconnected(self, client: int) -> None:
        with self._lock:
            self._clients.discard(int(client))
            self._cameras.pop(int(client), None)
            if self._camera is not None and self._camera.client == int(client):
                # another browser still open takes over the view, from the camera it last sent
                # (its latency counts from now: it sent that camera long ago)
                latest = max(self._cameras.values(), key=lambda message: message.received, default=None)
                latest = latest and replace(latest, received=time.perf_counter())
                self._camera, self._camera_new = latest, latest is not None

    def take(self) -> Mail:
        with self._lock:
            camera = self._camera if self._camera_new else None
            mail = Mail(camera, self._actions, frozenset(self._clients), self._moved)
            self._camera_new, self._actions = False, []
            return mail
