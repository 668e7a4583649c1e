"""Pair each camera image with the camera_info of the same stamp.

An image and its camera_info travel on two topics, so the node cannot take "the camera_info it
handled last" as the image's: a frame would then be processed with another frame's K whenever
the intrinsics change, one invalid camera_info would reject the next good frame, and a
camera_info whose image never arrived (too large for the transport) would reject the next normal
frame by its size. Depth and every distance scale with fx, so a wrong K is a wrong distance.
This module keys the recent camera_info messages by stamp, as image_transport's CameraSubscriber
and message_filters' time synchronisers do; CARLA (the bridge and the native ROS 2 interface)
stamps both with the same simulation time.

The rule for one image (stamps compared in integer nanoseconds, within ``slop_ns``):

1. A camera_info with the image's stamp is the image's. If it is invalid, or its size is not the
   image's, the frame is rejected: an invalid camera_info affects only its own frame.
2. Without one, the image waits (the node bounds the wait by ``camera_info_wait_s``), and stops
   waiting early once a camera_info with a later stamp has arrived: camera_info messages arrive
   in stamp order, so the image's own one was lost.
3. Then the latest valid camera_info of the image's size is used, and the frame is counted as
   such (``fallback``); if there is none, the frame is rejected. A frame is never processed with
   a camera_info of another size, so a too-large K cannot reject later frames.

Every camera_info is also matched against the stamps of the images that arrived (rejected
images too): one whose image never came, once an image with a later stamp has arrived or once
it leaves the buffer, is counted in ``infos_without_image``. That is the one trace of an image
the transport could not carry.

Pure logic, no ROS: the node passes stamps in nanoseconds and guards the object with its lock.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from depthssd_core.geometry import CameraIntrinsics

#: camera_info messages kept (1.6 s at 20 Hz): an image arrives well within this of its own.
DEFAULT_INFO_CAPACITY = 32
#: Image stamps remembered, so a camera_info arriving after its image is still matched.
DEFAULT_IMAGE_CAPACITY = 32
#: Image sizes whose latest valid camera_info is kept for the fallback.
DEFAULT_SIZES = 8


@dataclass
class _Info:
    """One received camera_info: its intrinsics, or why it is invalid."""

    stamp_ns: int
    intrinsics: CameraIntrinsics | None
    error: str
    matched: bool = False  # an image with this stamp arrived
    counted: bool = False  # already counted as a camera_info without an image


@dataclass(frozen=True)
class Pairing:
    """The intrinsics chosen for one image, or why there are none.

    Attributes:
        status: ``paired`` (its own camera_info), ``fallback`` (the latest valid one of its
            size, see the module docstring) or ``rejected``.
        intrinsics: the intrinsics to use (None when rejected).
        reason: why the frame is rejected, or which camera_info the fallback used.
        kind: what kind of rejection (``camera_info_invalid``, ``camera_info_size``,
            ``no_camera_info``; empty unless rejected).
    """

    status: str
    intrinsics: CameraIntrinsics | None
    reason: str = ""
    kind: str = ""


@dataclass
class PairingCounts:
    """What the buffer has seen (the node reports these in /diagnostics)."""

    infos_received: int = 0
    infos_invalid: int = 0
    infos_without_image: int = 0
    paired: int = 0
    fallback: int = 0


def format_stamp(stamp_ns: int) -> str:
    """A stamp in nanoseconds as ``sec.nanosec`` seconds, for messages."""
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return f"{sec}.{nanosec:09d} s"


class CameraInfoBuffer:
    """Recent camera_info messages keyed by stamp (see the module docstring for the rule)."""

    def __init__(self, slop_ns: int = 0, info_capacity: int = DEFAULT_INFO_CAPACITY,
                 image_capacity: int = DEFAULT_IMAGE_CAPACITY,
                 sizes: int = DEFAULT_SIZES) -> None:
        """Create an empty buffer.

        Args:
            slop_ns: largest stamp difference between an image and its camera_info, ns.
            info_capacity: camera_info messages kept.
            image_capacity: image stamps kept for matching late camera_info messages.
            sizes: image sizes whose latest valid camera_info is kept for the fallback.
        """
        if slop_ns < 0 or min(info_capacity, image_capacity, sizes) < 1:
            raise ValueError(f"need slop_ns >= 0 and capacities >= 1, got {slop_ns}, "
                             f"{info_capacity}, {image_capacity}, {sizes}")
        self.slop_ns = slop_ns
        self.counts = PairingCounts()
        self._infos: collections.OrderedDict[int, _Info] = collections.OrderedDict()
        self._info_capacity = info_capacity
        self._image_stamps: collections.deque[int] = collections.deque(maxlen=image_capacity)
        self._latest_by_size: collections.OrderedDict[tuple[int, int], _Info] = (
            collections.OrderedDict())
        self._sizes = sizes
        # The stamp of the camera_info received last (not the largest: after a bag loop the
        # stamps start again from below).
        self._last_info_ns: int | None = None

    # ------------------------------------------------------------------ input
    def add_info(self, stamp_ns: int, intrinsics: CameraIntrinsics | None,
                 error: str = "") -> None:
        """Take a received camera_info: its intrinsics, or None and why it is invalid."""
        self.counts.infos_received += 1
        if intrinsics is None:
            self.counts.infos_invalid += 1
        info = _Info(stamp_ns, intrinsics, error or "invalid camera_info")
        info.matched = any(abs(s - stamp_ns) <= self.slop_ns for s in self._image_stamps)
        # A repeated stamp (a driver that stamps camera_info once) replaces the older message.
        self._infos.pop(stamp_ns, None)
        self._infos[stamp_ns] = info
        while len(self._infos) > self._info_capacity:
            self._settle(self._infos.popitem(last=False)[1])
        if intrinsics is not None:
            size = (intrinsics.width, intrinsics.height)
            self._latest_by_size.pop(size, None)
            self._latest_by_size[size] = info
            while len(self._latest_by_size) > self._sizes:
                self._latest_by_size.popitem(last=False)
        # A camera_info older than the last image is not settled here: after a bag loop the
        # stamps start again from below, and the next image settles it anyway.
        self._last_info_ns = stamp_ns

    def note_image(self, stamp_ns: int) -> None:
        """Record that an image with this stamp arrived (whatever becomes of the frame)."""
        self._image_stamps.append(stamp_ns)
        own = self._nearest(stamp_ns)
        if own is not None:
            own.matched = True
        for info in self._infos.values():
            if info.stamp_ns < stamp_ns - self.slop_ns:
                self._settle(info)  # its image would have come before this one

    # ------------------------------------------------------------------ pairing
    def pair(self, stamp_ns: int, width: int, height: int) -> Pairing | None:
        """The intrinsics of an image from its own camera_info; None while it may still come.

        Args:
            stamp_ns: the image's stamp, ns.
            width: the image's width, pixels.
            height: the image's height, pixels.

        Returns:
            A ``paired`` or ``rejected`` :class:`Pairing` if a camera_info with the stamp is
            here, else None (wait, :meth:`own_info_lost` says when to stop early, then call
            :meth:`fallback`).
        """
        info = self._nearest(stamp_ns)
        if info is None:
            return None
        if info.intrinsics is None:
            return self._reject("camera_info_invalid",
                                f"its camera_info ({format_stamp(info.stamp_ns)}) is invalid: "
                                f"{info.error}")
        intrinsics = info.intrinsics
        if (intrinsics.width, intrinsics.height) != (width, height):
            return self._reject("camera_info_size",
                                f"image is {width}x{height} but its camera_info "
                                f"({format_stamp(info.stamp_ns)}) says "
                                f"{intrinsics.width}x{intrinsics.height}")
        self.counts.paired += 1
        return Pairing("paired", intrinsics)

    def own_info_lost(self, stamp_ns: int) -> bool:
        """Whether a camera_info later than the image arrived while its own did not."""
        return (self._last_info_ns is not None
                and self._last_info_ns > stamp_ns + self.slop_ns
                and self._nearest(stamp_ns) is None)

    def fallback(self, stamp_ns: int, width: int, height: int) -> Pairing:
        """Step 3 of the rule: the latest valid camera_info of the image's size, or reject.

        Call it only after :meth:`pair` returned None and the wait is over; a camera_info that
        arrived meanwhile is still preferred.
        """
        own = self.pair(stamp_ns, width, height)
        if own is not None:
            return own
        latest = self._latest_by_size.get((width, height))
        if latest is None:
            return self._reject("no_camera_info",
                                f"no camera_info with its stamp {format_stamp(stamp_ns)} "
                                f"and no earlier valid one for {width}x{height}")
        self.counts.fallback += 1
        return Pairing("fallback", latest.intrinsics,
                       f"no camera_info with its stamp {format_stamp(stamp_ns)}; used the one "
                       f"of {format_stamp(latest.stamp_ns)}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _reject(kind: str, reason: str) -> Pairing:
        return Pairing("rejected", None, reason, kind)

    def _nearest(self, stamp_ns: int) -> _Info | None:
        exact = self._infos.get(stamp_ns)
        if exact is not None or self.slop_ns == 0:
            return exact
        best, best_diff = None, self.slop_ns + 1
        for info in self._infos.values():
            diff = abs(info.stamp_ns - stamp_ns)
            if diff < best_diff:
                best, best_diff = info, diff
        return best

    def _settle(self, info: _Info) -> None:
        """Count ``info`` as a camera_info without an image if no image matched it."""
        if not info.matched and not info.counted:
            info.counted = True
            self.counts.infos_without_image += 1
