"""The public surface of ``engined``: what it exports and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import engined


def test_all_lists_exactly_the_public_names_sorted() -> None:
    """``__all__`` is sorted and names every public attribute of the package, no more."""
    public = {
        name
        for name, value in vars(engined).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert engined.__all__ == sorted(engined.__all__)
    assert set(engined.__all__) - {"__version__"} == public


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` is importable from the package."""
    for name in engined.__all__:
        assert getattr(engined, name) is not None, name


def test_version_comes_from_the_installed_metadata() -> None:
    """``engined.__version__`` is the version pyproject.toml declares."""
    from importlib.metadata import version

    assert engined.__version__ == version("engined")


def test_unknown_attribute_raises_attribute_error() -> None:
    """The module ``__getattr__`` for ``__version__`` does not swallow other names."""
    with pytest.raises(AttributeError, match="no_such_name"):
        engined.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_importing_engined_loads_neither_grpc_nor_prometheus() -> None:
    """``import engined`` stays light: the core never pulls in grpc or prometheus_client."""
    code = (
        "import sys, engined; "
        "heavy = sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'grpc', 'prometheus_client', 'google'}); "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == ""


def test_testing_module_exports_fake_clock() -> None:
    """``engined.testing`` is the home of FakeClock for users' own tests."""
    from engined import testing

    assert testing.__all__ == ["FakeClock", "FakeDependency"]
    assert isinstance(testing.FakeClock(), engined.Clock)


def test_testing_is_reachable_after_a_plain_import_engined() -> None:
    """``import engined; engined.testing.FakeClock()`` works as the README writes it.

    Once it raised AttributeError: nothing imported the submodule.
    """
    code = "import engined; print(engined.testing.FakeClock().monotonic())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "0.0"


def test_rpc_all_lists_exactly_its_public_names_sorted() -> None:
    """``engined.rpc.__all__`` is sorted and names every public attribute it has, no more."""
    import engined.rpc as rpc

    public = {
        name
        for name, value in vars(rpc).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert rpc.__all__ == sorted(rpc.__all__)
    assert set(rpc.__all__) == public
