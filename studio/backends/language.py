"""Text generation: creative writing (continue a text in place) and chat, streamed token by token.

Two model families sit behind one interface (`TextEngine`):
- llama.cpp (`llama-cpp-python`) for GGUF files: the built-in SmolLM2-135M-Instruct and any GGUF repo;
- transformers for safetensors checkpoints from the hub or a local folder.

Generation runs in a producer thread that only computes tokens; the caller's iterator drains
whatever has arrived since its last look. A slow reader (a browser, a terminal) therefore never
slows the model down: it just receives a few tokens per update instead of one.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from studio import catalog, hub
from studio.backends import text_engine
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError, StudioError
from studio.runtime import NEVER_CANCELLED, CacheKey, CancelToken, ModelCache, loading_errors, torch_device

log = logging.getLogger(__name__)

BUILTIN_TEXT_MODEL = "smollm2-135m-instruct-gguf"
WRITE, CHAT = "write", "chat"
MAX_PROMPT_CHARS = 50_000  # one text or one chat message; well past any small model's context
MAX_HISTORY_CHARS = 400_000  # a whole conversation; older turns are dropped to fit the context anyway
MAX_NEW_TOKENS = 4096
MAX_STOP_SEQUENCES = 8
MAX_STOP_LENGTH = 100
MAX_TEMPERATURE = 2.0
LLAMA_CONTEXT = 8192  # tokens of KV cache to allocate; capped by what the model was trained on
# The prompt is read this many tokens at a time, Stop checked between: about 0.3 s each for the
# built-in model on a busy 2-core machine, and no slower in total than one big batch there.
READ_CHUNK = 32
MAX_EXAMPLES = 8
MAX_GRAMMAR_CHARS = 10_000
SEED_RANGE = 2**31
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class TextRequest:
    """One generation. `write` continues `text`; `chat` answers the last user turn of `messages`."""

    mode: str = WRITE
    text: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # (role, content), oldest first, ending with a user turn
    system: str = ""
    model: str = BUILTIN_TEXT_MODEL
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repetition_penalty: float = 1.1
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None  # None: a fresh random seed, recorded in the result
    # A preset's guidance for small models (chat only): example exchanges read before the conversation,
    # and a GBNF grammar the reply must follow (llama.cpp models; others follow the examples only).
    examples: tuple[tuple[str, str], ...] = ()
    grammar: str = ""

    def validate(self) -> None:
        if self.mode not in (WRITE, CHAT):
            raise InputError(f"The mode must be '{WRITE}' or '{CHAT}', not '{self.mode}'.")
        if self.mode == WRITE:
            if not self.text.strip():
                raise InputError("Write a few words first: the model continues your text.")
            _check_length("The text", self.text)
        else:
            if not self.messages or self.messages[-1][0] != "user":
                raise InputError("The conversation must end with your message.")
            if not self.messages[-1][1].strip():
                raise InputError("Type a message first.")
            for role, _ in self.messages:
                if role not in ROLES[1:]:
                    raise InputError(f"A chat turn's role must be 'user' or 'assistant', not '{role}'.")
            _check_length("Your message", self.messages[-1][1])
            _check_length("The system prompt", self.system)
            total = sum(len(c) for _, c in self.messages) + len(self.system)
            if total > MAX_HISTORY_CHARS:
                raise InputError(
                    f"The conversation is {total:,} characters long; the studio keeps at most "
                    f"{MAX_HISTORY_CHARS:,}. Clear the chat or start a new one."
                )
        _check_range("The temperature", self.temperature, 0.0, MAX_TEMPERATURE,
                      "0 always picks the most likely word; higher is more adventurous")
        _check_range("Top-p", self.top_p, 0.0, 1.0, exclusive_low=True)
        _check_range("Min-p", self.min_p, 0.0, 1.0)
        _check_range("The repetition penalty", self.repetition_penalty, 0.5, 2.0, "1 means no penalty")
        if not isinstance(self.top_k, int) or not 0 <= self.top_k <= 1000:
            raise InputError(f"Top-k must be a whole number from 0 (off) to 1000, not {self.top_k}.")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise InputError(
                f"Max new tokens must be a whole number from 1 to {MAX_NEW_TOKENS:,}, not {self.max_new_tokens}."
            )
        if len(self.stop) > MAX_STOP_SEQUENCES:
            raise InputError(f"Give at most {MAX_STOP_SEQUENCES} stop sequences, not {len(self.stop)}.")
        for sequence in self.stop:
            if not sequence or len(sequence) > MAX_STOP_LENGTH:
                raise InputError(f"Each stop sequence needs 1 to {MAX_STOP_LENGTH} characters.")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < SEED_RANGE):
            raise InputError(f"The seed must be a whole number from 0 to {SEED_RANGE - 1} (or empty for random).")
        if len(self.examples) > MAX_EXAMPLES or any(len(pair) != 2 for pair in self.examples):
            raise InputError(f"Give at most {MAX_EXAMPLES} examples, each an (idea, answer) pair.")
        for idea, answer in self.examples:
            _check_length("An example", idea + answer)
        if len(self.grammar) > MAX_GRAMMAR_CHARS:
            raise InputError(f"The grammar is {len(self.grammar):,} characters long; at most {MAX_GRAMMAR_CHARS:,}.")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TextRequest:
        """Rebuild a request from a result's recorded parameters (JSON turns lists into tuples here)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in params.items() if k in names}
        values["messages"] = tuple((str(r), str(c)) for r, c in values.get("messages", ()))
        values["stop"] = tuple(values.get("stop", ()))
        values["examples"] = tuple((str(i), str(a)) for i, a in values.get("examples", ()))
        return cls(**values)


def _check_length(what: str, text: str) -> None:
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(
            f"{what} is {len(text):,} characters long; the studio takes at most {MAX_PROMPT_CHARS:,} at a time "
            "(far more than a small model can read at once). Shorten it, or keep the part that matters."
        )


def _check_range(what: str, value: float, low: float, high: float, hint: str = "", exclusive_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high
    if ok and exclusive_low and value == low:
        ok = False
    if not ok:
        bound = f"above {low:g}" if exclusive_low else f"from {low:g}"
        raise InputError(f"{what} must be {bound} up to {high:g}{f' ({hint})' if hint else ''}, not {value}.")


@dataclass(frozen=True)
class Sampling:
    """What an engine needs to pick tokens; the seed is always concrete here."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repetition_penalty: float
    max_new_tokens: int
    seed: int
    grammar: str = ""  # GBNF the text must follow; engines that cannot enforce one ignore it


@dataclass(frozen=True)
class Reading:
    """What an engine yields while it reads the prompt: tokens read so far of the whole."""

    done: int
    total: int


@dataclass
class TextResult:
    text: str  # the new text only: the continuation, or the reply
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    finish: str = "length"  # "length", "end" (the model finished), "stop-sequence" or "stopped"
    dropped_turns: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Decoding speed: tokens after the first over the time after the first."""
        if self.first_token_seconds is None or self.new_tokens < 2:
            return 0.0
        span = self.seconds - self.first_token_seconds
        return (self.new_tokens - 1) / span if span > 0 else 0.0


@dataclass
class TextUpdate:
    """What a reader sees while text streams: the new text so far, and the result once done."""

    text: str
    new_tokens: int
    seconds: float
    first_token_seconds: float | None
    notices: list[str]
    result: TextResult | None = None
    prompt_tokens: int = 0
    read_tokens: int = 0  # of the prompt, while the model reads it (all of it once text arrives)

    @property
    def reading(self) -> bool:
        return self.read_tokens < self.prompt_tokens and self.result is None

    @property
    def done(self) -> bool:
        return self.result is not None


class TextEngine(Protocol):
    """One loaded model, whatever its family."""

    context_size: int

    def count_tokens(self, text: str) -> int: ...

    def tail(self, text: str, max_tokens: int) -> str: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def tokens(self, prompt: str, sampling: Sampling,
               should_stop: threading.Event) -> Iterator[tuple[str, int] | Reading]:
        """`Reading` while the prompt is read (in chunks, returning early once `should_stop` is set),
        then (new text, tokens it took) as generation goes; the text may be empty mid-character."""
        ...


class StopScanner:
    """Finds stop sequences in streamed text, holding back any tail that could be the start of one."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.longest = max((len(s) for s in self.stops), default=0)

    def scan(self, text: str) -> tuple[str, bool]:
        """(the text safe to show, whether a stop sequence was found)."""
        if not self.stops:
            return text, False
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            return text[: min(hits)], True
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), hold, -1):
                if text.endswith(stop[:size]):
                    hold = size
                    break
        return text[: len(text) - hold], False


# -- the two families ---------------------------------------------------------------------------------


class LlamaCppEngine:
    """A GGUF model through llama.cpp; one generation at a time."""

    def __init__(self, path: Path, threads: int | None = None):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        # Half the cores, for reading the prompt too (llama.cpp would take them all for that): its
        # threads wait for each other at every step, so one core taken by the web server or another
        # program stalls them all. Measured on 2 busy cores: 1 thread 0.2 s, 2 threads 3 s for 25 tokens.
        threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.llm = Llama(
            model_path=str(path),
            n_ctx=LLAMA_CONTEXT,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        # llama.cpp sets up its working buffers on the first decode (seconds on a busy CPU): do it now,
        # as llama.cpp's own tools do, so the first request starts at full speed.
        self.llm.eval([max(self.llm.token_bos(), 0)])
        self.llm.reset()
        trained = self.llm._model.n_ctx_train()
        self.context_size = min(self.llm.n_ctx(), trained) if trained > 0 else self.llm.n_ctx()
        template = self.llm.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            vocab = self.llm._model
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=vocab.token_get_text(self.llm.token_eos()),
                bos_token=vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else "",
            )
        self.lock = threading.Lock()

    def _tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def tail(self, text: str, max_tokens: int) -> str:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return self.llm.detokenize(ids[-max_tokens:]).decode("utf-8", errors="ignore")

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if self._formatter is None:
            raise StudioError(f"The model {self.path.name} has no chat template; use Write mode with it.")
        return self._formatter(messages=messages).prompt

    def _read(self, prompt_ids: list[int], should_stop: threading.Event) -> Iterator[Reading]:
        """Evaluate all but the prompt's last token, a chunk at a time, so Stop works while a long
        message is read; `generate` then evaluates the last one and samples from its logits."""
        llm = self.llm
        body = prompt_ids[:-1]
        # What the KV cache already holds from the last request (a chat's earlier turns) is kept.
        cached = 0
        for held, wanted in zip(llm.input_ids[: llm.n_tokens], body, strict=False):
            if held != wanted:
                break
            cached += 1
        llm.n_tokens = cached  # eval drops whatever the cache holds past this point
        total = len(prompt_ids)
        yield Reading(cached, total)
        for start in range(cached, len(body), READ_CHUNK):
            if should_stop.is_set():
                return
            llm.eval(body[start:start + READ_CHUNK])
            yield Reading(llm.n_tokens, total)

    def tokens(self, prompt: str, sampling: Sampling,
               should_stop: threading.Event) -> Iterator[tuple[str, int] | Reading]:
        import codecs

        from llama_cpp import LlamaGrammar
        from llama_cpp import llama_cpp as lib

        llm = self.llm
        vocab = llm._model.vocab
        prompt_ids = self._tokenize(prompt)
        grammar = None
        if sampling.grammar:
            # LlamaGrammar does not parse the text; a sampler built from a broken one is a null pointer
            # that crashes the process. So it is parsed once here first.
            probe = lib.llama_sampler_init_grammar(vocab, sampling.grammar.encode("utf-8"), b"root")
            if not probe:
                raise StudioError("The preset's grammar could not be read (see the log for where); "
                                  "choose another preset or none.")
            lib.llama_sampler_free(probe)
            grammar = LlamaGrammar.from_string(sampling.grammar, verbose=False)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        llm.set_seed(sampling.seed)
        generated: list[int] = []
        with self.lock:
            yield from self._read(prompt_ids, should_stop)
            if should_stop.is_set():
                return
            yield Reading(len(prompt_ids), len(prompt_ids))
            for token in llm.generate(
                prompt_ids,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                temp=sampling.temperature,
                repeat_penalty=sampling.repetition_penalty,
                grammar=grammar,
            ):
                if lib.llama_vocab_is_eog(vocab, token):
                    return
                piece = llm.detokenize([token], prev_tokens=prompt_ids + generated)
                generated.append(token)
                yield decoder.decode(piece), 1
                if len(generated) >= sampling.max_new_tokens or should_stop.is_set():
                    return


class TransformersEngine:
    """A safetensors causal LM through transformers; streamed with TextIteratorStreamer."""

    STREAM_POLL_S = 0.1  # how often the reader wakes to check Stop while waiting for a token

    def __init__(self, folder: Path, device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch_device(device)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
        except OSError as exc:
            raise StudioError(f"The model in {folder} could not be loaded: {exc}") from None
        self.model.to(self.device).eval()
        limits = [
            getattr(self.model.config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        ]
        self.context_size = min([n for n in limits if isinstance(n, int) and 0 < n < 10**7] or [2048])
        self.lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tail(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids[-max_tokens:])

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not self.tokenizer.chat_template:
            raise StudioError("This model has no chat template; use Write mode with it.")
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _read(self, input_ids, cache, should_stop: threading.Event) -> Iterator[Reading]:
        """Fill `cache` with all but the prompt's last token, a chunk at a time, so Stop works while a
        long message is read; `generate` then reads only the last token."""
        import torch

        total = input_ids.shape[-1]
        yield Reading(0, total)
        with torch.inference_mode():
            for start in range(0, total - 1, READ_CHUNK):
                if should_stop.is_set():
                    return
                end = min(start + READ_CHUNK, total - 1)
                self.model(input_ids=input_ids[:, start:end], past_key_values=cache, use_cache=True)
                yield Reading(end, total)

    def tokens(self, prompt: str, sampling: Sampling,
               should_stop: threading.Event) -> Iterator[tuple[str, int] | Reading]:
        import torch
        from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        prompt_length = inputs["input_ids"].shape[-1]
        cache = DynamicCache(config=self.model.config)
        made = [0]  # tokens generated so far, counted once per step by the criterion below

        # The streamer cannot be cancelled itself: generation stops through this criterion instead.
        class StopFlag(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                made[0] = input_ids.shape[-1] - prompt_length
                return torch.full((input_ids.shape[0],), should_stop.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.STREAM_POLL_S
        )
        sample = sampling.temperature > 0
        options: dict[str, Any] = dict(
            **inputs,
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            repetition_penalty=sampling.repetition_penalty,
            stopping_criteria=StoppingCriteriaList([StopFlag()]),
            streamer=streamer,
            past_key_values=cache,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        if sample:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                           min_p=sampling.min_p or None)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                torch.manual_seed(sampling.seed)
                with torch.inference_mode():
                    self.model.generate(**options)
            except BaseException as exc:  # handed to the reader below
                failure.append(exc)
                streamer.end()

        reported = 0
        with self.lock:
            yield from self._read(inputs["input_ids"], cache, should_stop)
            if should_stop.is_set():
                return
            yield Reading(prompt_length, prompt_length)
            worker = threading.Thread(target=run, name="transformers-generate", daemon=True)
            worker.start()
            try:
                while True:
                    try:
                        piece = next(streamer)
                    except StopIteration:
                        break
                    except queue.Empty:
                        if not worker.is_alive() and streamer.text_queue.empty():
                            break
                        continue
                    count, reported = made[0] - reported, made[0]
                    yield piece, count
            finally:
                should_stop.set()
                worker.join()
        if made[0] > reported:
            yield "", made[0] - reported
        if failure and not isinstance(failure[0], Exception):
            raise failure[0]
        if failure:
            raise StudioError(f"Text generation failed: {failure[0]}") from failure[0]


# -- the adapter the UI, the CLI and the gallery call ---------------------------------------------------


class TextBackend:
    def __init__(self, cache: ModelCache, models: Catalog, *, device: str = "auto", offline: bool = False,
                 llama_threads: int | None = None):
        self.cache = cache
        self.catalog = models
        self.device = device
        self.offline = offline
        self.llama_threads = llama_threads

    def models(self) -> list[ModelEntry]:
        return self.catalog.for_task("text")

    def entry(self, model_id: str) -> ModelEntry:
        entry = self.catalog.get(model_id)
        if "text" not in entry.tasks or entry.family not in ("llama.cpp", "transformers"):
            raise InputError(f"'{model_id}' is not a text model; choose one of: "
                             f"{', '.join(e.id for e in self.models())}.")
        return entry

    def engine(self, model_id: str) -> TextEngine:
        """The loaded model, loading it (and downloading it, where allowed) on first use."""
        entry = self.entry(model_id)
        if entry.family == "llama.cpp":
            key = CacheKey(entry.id, "gguf", "cpu")
            if not text_engine.installed():  # a first install builds it beside the running studio
                raise StudioError(text_engine.state().message)

            def load():
                path = self._gguf_path(entry)
                with loading_errors(entry.name, path):
                    engine = LlamaCppEngine(path, self.llama_threads)
                return engine, path.stat().st_size / 2**20

        else:
            key = CacheKey(entry.id, "auto", self.device)

            def load():
                folder = hub.locate(entry, offline=self.offline)
                if folder.is_file():
                    raise StudioError(f"The transformers model '{entry.id}' must be a folder, not the file {folder}.")
                size = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 2**20
                with loading_errors(entry.name, folder):
                    engine = TransformersEngine(folder, self.device)
                return engine, size * 2  # weights plus working memory

        return self.cache.get(key, load)

    def _gguf_path(self, entry: ModelEntry) -> Path:
        if entry.builtin:
            return catalog.builtin_file(entry, entry.files[0])
        if entry.source == "local":
            path = hub.locate(entry, offline=self.offline)
            if path.is_dir():
                found = sorted(path.glob("*.gguf"))
                if not found:
                    raise StudioError(f"The folder {path} of '{entry.id}' holds no .gguf file.")
                return found[0]
            return path
        return hub.locate_file(entry, offline=self.offline)

    # -- prompts --------------------------------------------------------------------------------

    def prepare(self, engine: TextEngine, request: TextRequest) -> tuple[str, int, int, list[str]]:
        """(prompt, prompt tokens, chat turns dropped, notices): fit into the model's context."""
        budget = engine.context_size - request.max_new_tokens
        if budget < 16:
            raise InputError(
                f"This model reads at most {engine.context_size:,} tokens; ask for at most "
                f"{engine.context_size - 16:,} new tokens."
            )
        if request.mode == WRITE:
            count = engine.count_tokens(request.text)
            if count <= budget:
                return request.text, count, 0, []
            kept = engine.tail(request.text, budget - 1)
            notice = (f"Your text is {count:,} tokens; the model reads only its last {budget - 1:,} "
                      f"({engine.context_size:,}-token context, {request.max_new_tokens} kept for the new text).")
            return kept, engine.count_tokens(kept), 0, [notice]

        system = [{"role": "system", "content": request.system}] if request.system.strip() else []
        # A preset's examples read as earlier exchanges: a small model copies a shape it has just seen.
        for idea, answer in request.examples:
            system += [{"role": "user", "content": idea}, {"role": "assistant", "content": answer}]
        turns = [{"role": role, "content": content} for role, content in request.messages]
        # Drop whole exchanges from the start until the conversation fits (the examples stay).
        for start in range(0, len(turns), 2):
            prompt = engine.chat_prompt(system + turns[start:])
            count = engine.count_tokens(prompt)
            if count <= budget:
                dropped = start // 2
                notices = []
                if dropped:
                    notices.append(
                        f"The conversation outgrew the model's {engine.context_size:,}-token context: the oldest "
                        f"{dropped} exchange{'s' if dropped > 1 else ''} {'are' if dropped > 1 else 'is'} "
                        "left out of what the model reads."
                    )
                return prompt, count, dropped, notices
        raise InputError(
            f"Your message and the system prompt come to {count:,} tokens; with {request.max_new_tokens} tokens "
            f"kept for the reply, this model reads at most {budget:,}. Shorten them, or lower max new tokens."
        )

    # -- generation -----------------------------------------------------------------------------

    def stream(self, request: TextRequest, *, cancel: CancelToken = NEVER_CANCELLED) -> Iterator[TextUpdate]:
        """Updates as text arrives (each with all new text so far); the last one carries the result."""
        request.validate()
        if request.seed is None:
            request = replace(request, seed=secrets.randbelow(SEED_RANGE))
        assert request.seed is not None
        entry = self.entry(request.model)
        engine = self.engine(request.model)
        started = time.perf_counter()
        prompt, prompt_tokens, dropped, notices = self.prepare(engine, request)
        sampling = Sampling(
            temperature=float(request.temperature),
            top_p=float(request.top_p),
            top_k=int(request.top_k),
            min_p=float(request.min_p),
            repetition_penalty=float(request.repetition_penalty),
            max_new_tokens=int(request.max_new_tokens),
            seed=int(request.seed),
            grammar=request.grammar if request.mode == CHAT else "",
        )
        if sampling.grammar and entry.family != "llama.cpp":
            notices = [*notices, "This model follows the preset's examples, but only llama.cpp (GGUF) models "
                       "are held to its format; check the shape of the answer."]
        scanner = StopScanner(request.stop)
        should_stop = threading.Event()
        pieces: queue.SimpleQueue = queue.SimpleQueue()
        done = object()
        made = [0]  # tokens the engine produced, whether or not anyone read them

        generation = engine.tokens(prompt, sampling, should_stop)

        def produce() -> None:
            try:
                for piece in generation:
                    if isinstance(piece, Reading):
                        continue
                    made[0] += piece[1]
                    pieces.put(piece)
                    if cancel.cancelled:
                        should_stop.set()
            except BaseException as exc:  # handed to the reader
                pieces.put(exc)
            pieces.put(done)

        raw, shown, tokens, first = "", "", 0, None
        finish = "length"
        reader_left = False
        read, cached = 0, None

        def update(text: str, result: TextResult | None = None) -> TextUpdate:
            return TextUpdate(text, tokens, time.perf_counter() - started, first, notices, result=result,
                              prompt_tokens=prompt_tokens, read_tokens=read)

        # The prompt and the first piece are read right here: the wait for them is what a writer feels,
        # and passing them across threads adds a scheduling round trip on a busy CPU. Between chunks of
        # the prompt, Stop is checked and the reader told how far the model has read. The rest streams
        # from a thread (the generator carries on there), so a slow reader never holds up generation.
        try:
            for item in generation:
                if isinstance(item, Reading):
                    if cached is None:
                        cached = item.done  # what the model still held from the last request
                    read, prompt_tokens = item.done, item.total
                    if cancel.cancelled:
                        should_stop.set()
                    # Progress only where there is a wait to show: more than one chunk to read.
                    if read < prompt_tokens and prompt_tokens - cached > READ_CHUNK:
                        yield update("")
                    continue
                made[0] += item[1]
                pieces.put(item)
                break
        except GeneratorExit:  # the reader went away while the model read: free the model at once
            generation.close()
            raise
        except Exception as exc:
            pieces.put(exc)
        producer = threading.Thread(target=produce, name="text-generate", daemon=True)
        producer.start()
        try:
            finished = False
            while not finished:
                try:
                    item = pieces.get(timeout=0.1)
                except queue.Empty:
                    if cancel.cancelled:
                        should_stop.set()
                    continue
                batch = [item]
                while True:  # take everything that has arrived: one update for all of it
                    try:
                        batch.append(pieces.get_nowait())
                    except queue.Empty:
                        break
                for item in batch:
                    if item is done:
                        finished = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    text, count = item
                    tokens += count
                    raw += text
                if first is None and raw:
                    first = time.perf_counter() - started
                visible, hit = scanner.scan(raw)
                if hit:
                    should_stop.set()
                    finish = "stop-sequence"
                if finished or visible != shown:
                    shown = visible
                    if not finished:
                        yield update(shown)
        except GeneratorExit:  # the reader went away: a closed page, a cancelled API call
            reader_left = True
            raise
        finally:
            should_stop.set()
            producer.join()
            if reader_left:
                log.info("text generation on %s stopped, its reader gone: %d of at most %d new tokens made",
                         entry.id, made[0], sampling.max_new_tokens)
        seconds = time.perf_counter() - started
        if finish != "stop-sequence":
            if cancel.cancelled:
                finish = "stopped"
            elif tokens < sampling.max_new_tokens:
                finish = "end"
            shown = raw  # nothing more can come: show any held-back tail
        log.info("text generation on %s: %d of at most %d new tokens (%s)", entry.id, tokens,
                 sampling.max_new_tokens, finish)
        params = self._params(entry, request, dropped)
        result = TextResult(
            text=shown,
            params=params,
            prompt_tokens=prompt_tokens,
            new_tokens=tokens,
            seconds=seconds,
            first_token_seconds=first,
            finish=finish,
            dropped_turns=dropped,
            notices=notices,
        )
        yield TextUpdate(shown, tokens, seconds, first, notices, result=result, prompt_tokens=prompt_tokens,
                         read_tokens=read)

    def generate(self, request: TextRequest, *, cancel: CancelToken = NEVER_CANCELLED) -> TextResult:
        """The whole text at once (the gallery's re-run, scripts)."""
        for update in self.stream(request, cancel=cancel):
            if update.result is not None:
                return update.result
        raise StudioError("Text generation ended without a result.")

    def _params(self, entry: ModelEntry, request: TextRequest, dropped: int) -> dict[str, Any]:
        params = {
            "task": "text",
            "model_revision": _revision(entry),
            "model_family": entry.family,
            **asdict(request),
        }
        params["messages"] = [list(turn) for turn in request.messages]
        params["stop"] = list(request.stop)
        params["examples"] = [list(pair) for pair in request.examples]
        for name in ("examples", "grammar"):  # a preset's guidance, recorded where there was one
            if not params[name] or request.mode == WRITE:
                params.pop(name)
        if request.mode == WRITE:
            params.pop("messages")
            params.pop("system")
        else:
            params.pop("text")
            params["dropped_turns"] = dropped
        return params


def _revision(entry: ModelEntry) -> str:
    if entry.builtin:
        return catalog.package_version(entry)
    if entry.source == "local":
        return f"local:{entry.path}"
    return entry.revision or "main"


def document(result: TextResult) -> tuple[str, str]:
    """(file suffix, contents) of a result as a person keeps it: the whole text, or the conversation."""
    params = result.params
    if params["mode"] == WRITE:
        return ".txt", params["text"] + result.text
    parts = [f"**System:** {params['system']}"] if params.get("system", "").strip() else []
    parts += [f"**{role.title()}:** {content}" for role, content in params["messages"]]
    parts.append(f"**Assistant:** {result.text}")
    return ".md", "\n\n".join(parts) + "\n"
