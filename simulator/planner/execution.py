"""Where a plan's searches run: in this process (default), or on a Dask cluster.

The plan hands the executor a list of independent tasks and gets the results back *in the order of the
list*, so the plan is identical whatever ran it. Each task's random numbers come from its own seed
(:func:`simulator.planner.space.config_seed`), never from the order of execution.

Clusters
--------
* ``workers=N``: a local ``distributed.LocalCluster`` with N single-threaded worker processes, started
  for the plan and closed after it.
* ``scheduler="tcp://host:8786"``: an existing cluster. Across machines use TLS, not plain TCP: start
  the scheduler and workers with certificates and connect with ``tls://host:8786`` and a
  :class:`distributed.security.Security`. The planner reads one from ``security_file`` (TOML)::

      tls_ca_file = "/etc/dask/ca.pem"
      tls_client_cert = "/etc/dask/client-cert.pem"
      tls_client_key = "/etc/dask/client-key.pem"
      require_encryption = true

  or, with no file, from Dask's own configuration (``distributed.comm.tls.*`` in ``~/.config/dask/``
  or ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE`` … environment variables), which ``Security()`` loads.
  A ``tcp://`` address to another host is accepted but warned about: its traffic (profiles, results)
  is unencrypted and unauthenticated.
"""

from __future__ import annotations

import contextlib
import tomllib
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import InputError

__all__ = ["DaskExecutor", "SerialExecutor", "executor_for", "load_security"]

_SECURITY_KEYS = {"tls_ca_file", "tls_client_cert", "tls_client_key", "require_encryption",
                  "tls_min_version", "tls_max_version"}


class SerialExecutor:
    """Runs tasks one after another in this process."""

    name = "serial"

    def map(self, fn: Callable, tasks: Sequence) -> list:
        return [fn(t) for t in tasks]

    def describe(self) -> dict:
        return {"executor": "serial"}


class DaskExecutor:
    """Runs tasks on a ``distributed.Client``; results come back in task order."""

    name = "dask"

    def __init__(self, client):
        self.client = client

    def map(self, fn: Callable, tasks: Sequence) -> list:
        if not tasks:
            return []
        futures = self.client.map(fn, list(tasks), pure=False)
        return self.client.gather(futures)

    def describe(self) -> dict:
        info = self.client.scheduler_info() if self.client.status == "running" else {}
        return {"executor": "dask", "scheduler": getattr(self.client.scheduler, "address", None),
                "workers": len(info.get("workers", {}))}


def load_security(path: str | Path | None):
    """A ``distributed.security.Security`` from a TOML file (keys above), or from Dask's config."""
    from distributed.security import Security

    if path is None:
        return Security()
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"security file {str(p)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"security file {str(p)!r} is not valid TOML: {exc}") from None
    unknown = set(doc) - _SECURITY_KEYS
    if unknown:
        raise InputError(f"security file {str(p)!r} has unknown key(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(_SECURITY_KEYS))}")
    for key in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        if key in doc and not Path(doc[key]).is_file():
            raise InputError(f"security file {str(p)!r}: {key} {doc[key]!r} does not exist")
    return Security(**doc)


@contextlib.contextmanager
def executor_for(scheduler: str | None = None, workers: int | None = None, security_file: str | None = None,
                 client=None) -> Iterator:
    """The executor a plan runs on (a context manager that closes what it started)."""
    if client is not None:
        yield DaskExecutor(client)
        return
    if scheduler is None and workers is None:
        yield SerialExecutor()
        return
    if scheduler is not None and workers is not None:
        raise InputError("give either --scheduler or --workers, not both")
    from distributed import Client, LocalCluster

    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
            raise InputError(f"workers must be an integer in [1, 256], got {workers!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # distributed's port-in-use notices are not the user's concern
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        try:
            with Client(cluster) as c:
                yield DaskExecutor(c)
        finally:
            cluster.close()
        return
    if not isinstance(scheduler, str) or "://" not in scheduler:
        raise InputError(f"scheduler must be an address like tls://host:8786, got {scheduler!r}")
    security = load_security(security_file) if (security_file or scheduler.startswith("tls://")) else None
    if scheduler.startswith("tcp://") and not any(h in scheduler for h in ("127.0.0.1", "localhost", "[::1]")):
        warnings.warn(f"scheduler {scheduler} uses plain TCP: traffic is neither encrypted nor authenticated; "
                      "use tls:// with --security-file", stacklevel=2)
    try:
        c = Client(scheduler, security=security, timeout="10s") if security else Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot connect to Dask scheduler {scheduler}: {exc}") from None
    try:
        yield DaskExecutor(c)
    finally:
        c.close()
