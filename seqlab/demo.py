"""What `seqlab demo` trains on: Tiny Shakespeare when a copy is found or can be downloaded, and
otherwise (offline, behind a proxy) the running Python's standard-library sources, a corpus every
machine has (`python-stdlib-small`, `seqlab.data.stdlib`), so that the demo never stops for want of data.
"""

from __future__ import annotations

import logging

from seqlab.data import registry, stdlib
from seqlab.errors import DataError

log = logging.getLogger(__name__)

CORPUS = "shakespeare"


def demo_corpus() -> tuple[str, str | None]:
    """(the corpus the demo trains on, None or the one line that says why it is not Tiny Shakespeare)."""
    entry = registry.registered(CORPUS)
    try:
        registry.locate(entry)
    except DataError as exc:
        log.debug("%s", exc)
        return stdlib.SMALL_NAME, (f"tiny Shakespeare is neither here nor downloadable (offline?): the demo trains "
                                   f"on this Python's standard-library sources instead ({stdlib.SMALL_NAME}, "
                                   f"about 1 MB of code)")
    return CORPUS, None
