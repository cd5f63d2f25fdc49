"""Exceptions a user can cause. Every layer raises these; the CLI and the graph turn them into a
clear message (never a traceback). Each message says what went wrong *and what to do*."""

from __future__ import annotations


class IKMoError(Exception):
    """Base of all user-facing errors: bad input, impossible constraints, provider down."""


class InputFileError(IKMoError):
    """A file the user gave cannot be read: missing, corrupt, truncated, wrong format."""


class RigMappingError(IKMoError):
    """A BVH rig's joints cannot be mapped onto the 22-joint skeleton.

    Attributes:
        missing: the target joints that were not found (empty when unknown).
        family: the naming family the rig's names look like ("" when unknown).
        rig: a short label of the rig (family, root joint, joint count), to group clips by rig.
    """

    def __init__(self, message: str, *, missing: tuple[str, ...] = (), family: str = "", rig: str = "") -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.family = family
        self.rig = rig


class MotionDataError(IKMoError):
    """Motion data is unusable: zero length, NaN, wrong shape."""


class ConstraintError(IKMoError):
    """A motion specification or constraint is invalid (outside the time range, NaN, too fast, empty)."""


class PoseEstimationError(IKMoError):
    """No usable person pose could be read from an image."""


class ConfigError(IKMoError):
    """The configuration is invalid or refers to something that does not exist."""


class OutputFileError(IKMoError):
    """An output file cannot be written: the folder is missing or read-only, the disk is full."""
