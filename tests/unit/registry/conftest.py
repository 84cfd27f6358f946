from tests.fixtures.models import trained

__all__ = ["trained"]
