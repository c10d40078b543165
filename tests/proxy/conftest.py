import pytest


@pytest.fixture(autouse=True)
def _clients(clients_closed: None) -> None:
    """Every proxy test closes the helpers.Client connections it opened."""
