import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def protocol_fixtures() -> dict:
    """The JSON messages jest checks too (src/__tests__/protocol.spec.ts)."""
    return json.loads((REPO / "protocol" / "fixtures" / "messages.json").read_text())
