from __future__ import annotations

import pytest

from qflow.errors import StoreError
from qflow.store import MetadataStore


@pytest.mark.integration
def test_unreachable_postgres_gives_one_line_store_error() -> None:
    url = "postgresql://qflow:secret@127.0.0.1:5999/x"
    with pytest.raises(StoreError) as info:
        MetadataStore(url)
    message = str(info.value)
    assert message.startswith(
        "Cannot connect to the metadata store at postgresql+psycopg://qflow:***@127.0.0.1:5999/x: "
    )
    assert message.endswith("Hint: start the server or fix QFLOW_STORE.")
    assert "\n" not in message and "secret" not in message
