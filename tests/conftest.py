"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

HUB_TOKEN = "hf_test_token"
HUB_USER = "tester"
HUB_ORG = "hf-slm-org"


# ---------------------------------------------------------------------------------------------------- loopback Hub
@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A loopback Hub (``tests/hub_server.py``) that the real ``huggingface_hub`` client talks to, for one test.

    ``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_DISABLE_XET`` into
    ``huggingface_hub.constants`` when it is imported, so besides the environment (for subprocesses) we patch those
    constants, transformers' remote-code module cache (derived from ``HF_HOME`` at import time too) and the one
    ``HfApi`` that transformers creates on first use and keeps (with the endpoint of that moment).
    Xet is switched off because the loopback server speaks plain LFS only.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    from hub_server import HubServer

    server = HubServer(tmp_path / "hub_storage", tokens={HUB_TOKEN: HUB_USER}, orgs={HUB_USER: [HUB_ORG]}).start()
    home = tmp_path / "hf_home"
    env = {
        "HF_ENDPOINT": server.url,
        "HF_TOKEN": HUB_TOKEN,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_MODULES_CACHE": str(home / "modules"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    patched = {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)
    try:
        import transformers.dynamic_module_utils as dynamic_module_utils
        import transformers.utils.hub as transformers_hub

        for module in (transformers_hub, dynamic_module_utils):
            monkeypatch.setattr(module, "HF_MODULES_CACHE", str(home / "modules"))
        monkeypatch.setattr(transformers_hub, "_hf_api", None)  # transformers keeps one HfApi, bound to its endpoint
    except ImportError:
        pass
    _http.close_session()  # no pooled connection may outlive (or predate) this server
    try:
        yield server
    finally:
        _http.close_session()
        server.stop()


# ---------------------------------------------------------------------------------------------------- components
@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and the 2 shared cores stay usable for the other jobs of the machine.
    A test file opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")` (a module-level
    `torch.set_num_threads(1)` would leak into every test file collected after it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def remote_code_report(request, tmp_path_factory):
    """Every `ComponentTesterMixin` subclass this session selected, saved and loaded as remote code in ONE fresh
    process without hf_slm (see `component_tester.run_remote_children`)."""
    from component_tester import ComponentTesterMixin, run_remote_children

    testers, seen = [], set()
    for item in request.session.items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, ComponentTesterMixin) and cls not in seen:
            if item.originalname == "test_remote_code_without_hf_slm":
                seen.add(cls)
                testers.append(cls())
    return run_remote_children(testers, tmp_path_factory.mktemp("remote_code"))
