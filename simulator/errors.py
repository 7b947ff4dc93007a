"""Exceptions that separate a user's mistake from a bug.

Everything a user can get wrong (a flag, a file, a model parameter) raises :class:`InputError` or a
subclass. The command line turns these into one line on stderr and exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user-supplied value is out of range, malformed or unknown.

    The message names the field, the value and what is allowed, e.g.
    ``arrival_rate must be a finite number > 0, got nan``.
    """


class UnstableSystemError(InputError):
    """The offered load is at or above capacity (ρ ≥ 1): no steady state exists.

    Parameters
    ----------
    message : str
        Human-readable verdict; it always prints ρ.
    utilization : float
        ρ = λ·E[S]/c, the per-server offered load.
    offered_load : float
        λ·E[S] in Erlangs (busy servers needed on average).
    min_servers : int or None
        Fewest servers that would make the system stable, where that is meaningful.
    """

    def __init__(self, message: str, *, utilization: float, offered_load: float | None = None,
                 min_servers: int | None = None):
        super().__init__(message)
        self.utilization = utilization
        self.offered_load = offered_load
        self.min_servers = min_servers


class ProfileError(InputError):
    """A profile file is corrupt, empty, holds non-finite samples or has an unsupported schema version."""
