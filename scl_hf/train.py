"""One generation's training run: an explicit Accelerate loop over packed ``<bos>expr<eos>`` blocks.

The recipe is nanoGPT's (and the paper's): every expression becomes ``<bos>expr<eos>``, the sequences
are concatenated into one endless stream (a fresh shuffle per epoch) and packed into blocks of
``n_positions`` tokens with no padding; each block starts at a ``<bos>`` and each sequence in it gets
its own positions and attention mask (``PackedStream``, ``document_inputs``), as when sampling. AdamW with weight
decay on matrices only, gradient clipping, linear warmup then cosine decay to ``min_learning_rate``,
a held-out share of the generation's data evaluated every ``eval_steps``, and the weights of the best
validation loss loaded back at the end (the paper's early stopping: train on, keep the best). With
``early_stopping_patience`` = p, training also ends after p validations in a row without a new best (the
learning-rate schedule is still the one of ``max_steps``: stopping cuts it short, it does not compress it).

Under ``accelerate launch --num_processes N`` every process builds the same stream and takes its own
slice of each global batch of ``N x per_device_train_batch_size`` blocks: the processes see disjoint
shards, and together exactly the blocks one process would see with an N times larger batch. The
learning rate is a function of the optimizer step alone, so its schedule has the same shape for any N.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, is_initialized
from accelerate.utils import ProjectConfiguration, set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from scl_hf.config import TrainingConfig
from scl_hf.cpu_kernels import cpu_training_kernels

IGNORE_INDEX = -100  # target of padded positions in the last validation block (PyTorch's default)


@dataclass
class TrainResult:
    """What one training run did; ``to_json()`` is the ``train`` block of ``metrics.json``."""

    best_val_loss: float  # mean cross-entropy per token (nats) on the held-out split, at best_step
    best_step: int  # optimizer step whose weights were kept
    steps: int  # optimizer steps taken (fewer than max_steps when training stopped early)
    final_train_loss: float  # mean training loss over the last logging window
    train_tokens: int  # input tokens consumed, all processes together
    seconds: float
    stopped_early: bool = False  # early_stopping_patience validations in a row found no new best
    validation_seconds: float = 0.0  # of ``seconds``, the time spent validating
    compile_seconds: float = 0.0  # of ``seconds``, the first optimizer step's, which compiles (torch_compile only)
    # one record per log ({"step", "loss", "lr", "tokens_per_second"}) and per evaluation
    # ({"step", "val_loss", "seconds"}: the validation's own time)
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        del out["history"]
        return out


def resolve_mixed_precision(value: str) -> str:
    """``"auto"`` becomes ``"bf16"`` on a GPU that supports it and ``"no"`` elsewhere (CPU autocast is slow)."""
    if value != "auto":
        return value
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(cfg: TrainingConfig, project_dir: str | None = None) -> Accelerator:
    """The run's one Accelerator: mixed precision resolved, gradient accumulation, trackers when asked.

    ``project_dir`` is where trackers write (TensorBoard event files go to ``<project_dir>/logs``).

    Accelerate keeps its state once per process, and an Accelerator with another ``mixed_precision`` than the
    one made before it raises. A process of one (a notebook, a test, a benchmark that trains in fp32 and then
    in bf16) gets the new setting: the mixed-precision state is reset here, deliberately, keeping the device
    and process group (``PartialState``); an earlier Accelerator of the process then follows the new setting, so
    use one at a time. Under a launch of several processes the state is the launch's, and a change is refused
    with both settings named.
    """
    mixed = resolve_mixed_precision(cfg.mixed_precision)
    state = AcceleratorState() if is_initialized() else None  # the process's shared state, if an Accelerator made it
    if state is not None and state.mixed_precision != mixed:
        if state.num_processes > 1:
            raise ValueError(f"this process already has an Accelerator with mixed_precision={state.mixed_precision!r}"
                             f"; a launch of {state.num_processes} processes cannot switch to {mixed!r}")
        AcceleratorState._reset_state()  # accelerate's own reset, the mixed-precision part only
    log_with = None if cfg.report_to == "none" else cfg.report_to
    project = None
    if project_dir is not None:
        project = ProjectConfiguration(project_dir=str(project_dir), logging_dir=f"{project_dir}/logs")
    return Accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=log_with,
        project_config=project,
        # The learning rate is set by hand from the optimizer step (learning_rate_at), so no scheduler is
        # prepared and its N-steps-per-optimizer-step behaviour under N processes never arises.
        step_scheduler_with_optimizer=False,
    )


def cpu_threads(requested: int | None, local_processes: int) -> int:
    """CPU threads for each process: ``requested`` (``torch_num_threads``), else the cores this process may use
    divided by the processes of the launch on this machine, at least 1.

    OpenMP threads that outnumber the cores spin against each other: on a 2-core machine two runs with torch's
    default of one thread per core each made a small model's training step ten times slower.
    """
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_processes))


def set_cpu_threads(cfg: TrainingConfig, accelerator: Accelerator) -> int:
    """Give torch this process's share of the cores (``cpu_threads``); returns the number of threads."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))  # set by accelerate launch
    threads = cpu_threads(cfg.torch_num_threads, local)
    torch.set_num_threads(threads)
    return threads


def learning_rate_at(step: int, cfg: TrainingConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to ``min_learning_rate``.

    nanoGPT's schedule: warmup reaches the peak at step ``warmup_steps``; the cosine then runs over the
    remaining ``max_steps - warmup_steps`` steps.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_steps + 1)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_learning_rate + 0.5 * (1.0 + math.cos(math.pi * progress)) * (
        cfg.learning_rate - cfg.min_learning_rate)


def encode_sequences(texts: list[str], tokenizer) -> list[np.ndarray]:
    """``<bos>text<eos>`` token ids of every text (int64 arrays)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    return [np.array([bos, *seq, eos], dtype=np.int64) for seq in ids]


def split_train_validation(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle with ``seed`` and hold out ``round(fraction * n)`` rows (at least one) for validation."""
    if len(texts) < 2:
        raise ValueError(f"dataset must have at least 2 rows to hold out a validation split, got {len(texts)}")
    order = np.random.default_rng(seed).permutation(len(texts))
    num_val = min(len(texts) - 1, max(1, round(fraction * len(texts))))
    return [texts[i] for i in order[num_val:]], [texts[i] for i in order[:num_val]]


def truncate_sequences(sequences: list[np.ndarray], block_size: int) -> list[np.ndarray]:
    """Cut sequences to ``block_size + 1`` tokens: longer ones cannot be seen whole (nor sampled) by the model."""
    return [seq[: block_size + 1] for seq in sequences]


def _block_at(buffer: np.ndarray, bos_positions: np.ndarray, first_input: int, block_size: int,
              bos_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The block whose first new target is ``buffer[first_input + 1]``: ``(inputs, targets, next first_input)``.

    The block starts at the ``<bos>`` of the sequence holding ``first_input``, so every sequence is read
    from its own start (position 0), as when sampling. Targets already predicted by the previous block
    (that sequence's re-read beginning) and ``<bos>`` targets (crossing into the next sequence) are
    ``IGNORE_INDEX``.
    """
    if buffer[first_input + 1] == bos_id:  # the sequence is done: the next block starts at the next one
        first_input += 1
    start = bos_positions[np.searchsorted(bos_positions, first_input, side="right") - 1]
    inputs = buffer[start: start + block_size]
    targets = buffer[start + 1: start + block_size + 1].copy()
    targets[: first_input - start] = IGNORE_INDEX
    targets[targets == bos_id] = IGNORE_INDEX
    return inputs, targets, start + block_size


class PackedStream:
    """Endless stream of ``<bos>expr<eos>`` sequences, reshuffled every epoch, cut into training blocks.

    ``next_batch(n)`` returns ``(inputs, targets)``, each ``(n, block_size)`` int64. Blocks are packed
    back to back with no padding, but each block starts at a sequence's ``<bos>``: a sequence cut by
    the end of one block is re-read from its start by the next one, whose targets begin where the
    previous block stopped. So every token is predicted exactly once, always with its whole sequence
    as context, and (with ``document_inputs``) every sequence sits at positions 0, 1, ... and attends
    to itself only — exactly what the model sees when it samples from ``<bos>``. Plain nanoGPT
    packing instead starts most blocks mid-sequence, which teaches position 0 to continue a fragment:
    sampled from ``<bos>``, such a model opens with a stray ``)`` or ``and`` (docs/BENCHMARKS.md).
    """

    def __init__(self, sequences: list[np.ndarray], block_size: int, seed: int, bos_id: int) -> None:
        if not sequences:
            raise ValueError("cannot pack an empty training split")
        self.sequences = truncate_sequences(sequences, block_size)
        self.block_size = block_size
        self.bos_id = bos_id
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self.bos_positions = np.zeros(0, dtype=np.int64)
        self.first_input = 0  # buffer index of the input token whose successor is the next target

    def _add_epoch(self) -> None:
        # keep the unfinished sequence (from its <bos>) and append a fresh permutation
        keep = self.bos_positions[np.searchsorted(self.bos_positions, self.first_input, side="right") - 1] \
            if len(self.bos_positions) else 0
        order = self.rng.permutation(len(self.sequences))
        self.buffer = np.concatenate([self.buffer[keep:], *(self.sequences[i] for i in order)])
        self.first_input -= keep
        self.bos_positions = np.flatnonzero(self.buffer == self.bos_id)
        self.epoch += 1

    def next_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = np.empty((n, self.block_size), dtype=np.int64)
        targets = np.empty((n, self.block_size), dtype=np.int64)
        for b in range(n):
            # a block reaches at most block_size tokens past the start of the sequence holding first_input
            while len(self.buffer) < self.first_input + 2 * self.block_size + 1:
                self._add_epoch()
            inputs[b], targets[b], self.first_input = _block_at(self.buffer, self.bos_positions, self.first_input,
                                                                self.block_size, self.bos_id)
        return torch.from_numpy(inputs), torch.from_numpy(targets)


def validation_blocks(sequences: list[np.ndarray], block_size: int, bos_id: int,
                      filler_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation sequences (fixed order), packed like ``PackedStream``, as ``(inputs, targets)``.

    Every token after each ``<bos>`` is a target exactly once. The last block is filled up with
    ``filler_id`` inputs whose targets are ``IGNORE_INDEX``.
    """
    sequences = truncate_sequences(sequences, block_size)
    total = sum(len(seq) for seq in sequences)  # stream indices >= total are filler
    stream = np.concatenate([*sequences, np.full(block_size + 1, filler_id, dtype=np.int64)])
    bos_positions = np.flatnonzero(stream[:total] == bos_id)
    blocks, first_input = [], 0
    while first_input < total - 1:
        inputs, targets, next_first = _block_at(stream, bos_positions, first_input, block_size, bos_id)
        start = next_first - block_size
        targets[start + 1 + np.arange(block_size) >= total] = IGNORE_INDEX
        blocks.append((inputs, targets))
        first_input = next_first
    return torch.from_numpy(np.stack([i for i, _ in blocks])), torch.from_numpy(np.stack([t for _, t in blocks]))


def document_inputs(input_ids: torch.Tensor, bos_id: int) -> dict[str, torch.Tensor]:
    """``position_ids`` and a 4D attention mask that make each ``<bos>`` sequence in a block independent.

    Positions restart at 0 at every ``<bos>``; token i attends to token j <= i of its own sequence only:
    ``attention_mask`` is ``(batch, 1, time, time)`` bool, True where attention is allowed.
    """
    batch, time_ = input_ids.shape
    index = torch.arange(time_, device=input_ids.device).expand(batch, time_)
    is_bos = input_ids == bos_id
    seq_start = torch.where(is_bos, index, torch.zeros_like(index)).cummax(dim=1).values
    seq_id = is_bos.cumsum(dim=1)
    causal = torch.ones(time_, time_, dtype=torch.bool, device=input_ids.device).tril()
    mask = causal & (seq_id[:, :, None] == seq_id[:, None, :])
    return {"position_ids": index - seq_start, "attention_mask": mask[:, None]}


def decay_groups(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``(decay, no_decay)``: the trainable parameters split by the kind of module that holds them.

    Decay: the weights of ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2's projections), and of an
    ``nn.Embedding`` tied to the output layer (GPT-2's token embedding is also its lm_head). No decay:
    biases, LayerNorm parameters and an embedding that is only a lookup table (GPT-2's positions).
    Each tensor is listed once, at its first name (tied weights share one tensor). A parameter of
    any other kind of module is an error rather than a guess.
    """
    output = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None
    output_weight = None if output is None else output.weight
    decay, no_decay, seen = [], [], set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if name == "bias" or isinstance(module, nn.LayerNorm):
                no_decay.append(param)
            elif name == "weight" and isinstance(module, (nn.Linear, Conv1D)):
                decay.append(param)
            elif name == "weight" and isinstance(module, nn.Embedding):
                (decay if param is output_weight else no_decay).append(param)
            else:
                raise ValueError(f"no weight-decay rule for {module_name}.{name} of a {type(module).__name__}")
    return decay, no_decay


def make_optimizer(model: torch.nn.Module, cfg: TrainingConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW with ``cfg.weight_decay`` on the ``decay`` group of ``decay_groups`` and none on the rest.

    ``fused``: one kernel for the whole update (CPU and CUDA; 4x faster than the default on a CPU).
    """
    decay, no_decay = decay_groups(model)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate_at(0, cfg), betas=(cfg.adam_beta1, cfg.adam_beta2),
                             fused=fused or None)


def _loss_sum(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bos_id: int) -> torch.Tensor:
    """Summed cross-entropy (nats) of ``targets`` under ``model(inputs)``; ``IGNORE_INDEX`` targets are skipped."""
    logits = model(input_ids=inputs, use_cache=False, **document_inputs(inputs, bos_id)).logits
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, accelerator: Accelerator,
                  batch_size: int, bos_id: int) -> float:
    """Mean validation loss per token over all processes (each process evaluates every N-th block)."""
    was_training = model.training
    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)  # [loss sum, target count]
    mine_in, mine_tg = inputs[rank::world], targets[rank::world]
    for i in range(0, len(mine_in), batch_size):
        x = mine_in[i: i + batch_size].to(accelerator.device)
        y = mine_tg[i: i + batch_size].to(accelerator.device)
        total[0] += _loss_sum(model, x, y, bos_id).double()
        total[1] += (y != IGNORE_INDEX).sum()
    total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return (total[0] / total[1]).item()


def mean_nll(model, tokenizer, texts: list[str], accelerator: Accelerator, batch_size: int) -> float | None:
    """Mean negative log-likelihood per token (nats) of ``texts`` under ``model``; None for no texts.

    Exactly the validation loss: each text is ``<bos> text <eos>``, packed into blocks that start at a
    ``<bos>`` with per-sequence positions and attention, every token after a ``<bos>`` predicted once,
    summed over all processes (each evaluates every N-th block) and divided by the number of targets.
    Call it on every process.
    """
    if not texts:
        return None
    inputs, targets = validation_blocks(encode_sequences(texts, tokenizer), model.config.n_positions,
                                        tokenizer.bos_token_id, tokenizer.eos_token_id)
    model.to(accelerator.device)
    return evaluate_loss(model, inputs, targets, accelerator, batch_size, tokenizer.bos_token_id)


def train_model(model, tokenizer, dataset, cfg: TrainingConfig, accelerator: Accelerator, *, seed: int,
                step_offset: int = 0) -> TrainResult:
    """Train ``model`` on the ``text`` column of ``dataset``; return with the best-validation weights loaded.

    Args:
        model: the caller's (unwrapped) ``GPT2LMHeadModel``, freshly initialised or the previous generation's.
        tokenizer: the character tokenizer (``bos``/``eos``/``pad`` ids are used for packing).
        dataset: a ``datasets.Dataset`` with a ``text`` column.
        cfg: the training recipe.
        accelerator: from ``make_accelerator(cfg)``.
        seed: shuffles the split and the batches and seeds dropout (process ``i`` uses ``seed + i``).
        step_offset: added to the step of every tracker record, so generations follow each other on one axis.

    Returns:
        A ``TrainResult``; ``model`` holds the weights of ``best_step`` and is left in eval mode.
    """
    start = time.perf_counter()
    if "text" not in dataset.column_names:
        raise ValueError(f"dataset must have a 'text' column, got columns {dataset.column_names}")
    block_size = model.config.n_positions
    train_texts, val_texts = split_train_validation(list(dataset["text"]), cfg.validation_fraction, seed)
    bos_id = tokenizer.bos_token_id
    stream = PackedStream(encode_sequences(train_texts, tokenizer), block_size, seed, bos_id)
    val_inputs, val_targets = validation_blocks(encode_sequences(val_texts, tokenizer), block_size, bos_id,
                                                tokenizer.eos_token_id)

    accelerator.gradient_accumulation_steps = cfg.gradient_accumulation_steps
    if accelerator.log_with and not accelerator.trackers:
        accelerator.init_trackers("scl_hf")
    set_seed(seed, device_specific=True)  # dropout masks differ between processes, repeat between runs
    model.train()
    optimizer = make_optimizer(model, cfg, fused=accelerator.device.type in ("cpu", "cuda"))
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    # torch_compile: the training forward only, whose shapes never change (full batches of block_size). Validation
    # runs eagerly: eval mode and its short last batch would each compile the model again, for a small share of
    # the work. torch.compile caches by code, not by module, so a later generation's new model of the same shape
    # reuses the compiled graphs (scripts/bench_gpu.py measures both generations' compile seconds).
    forward = torch.compile(wrapped) if cfg.torch_compile else wrapped

    rank, world = accelerator.process_index, accelerator.num_processes
    batch = cfg.per_device_train_batch_size
    tokens_per_step = world * batch * block_size * cfg.gradient_accumulation_steps
    history: list[dict] = []
    best_val, best_step, best_state = math.inf, 0, None
    stale, stopped_early, validation_seconds = 0, False, 0.0  # validations since the last new best
    compile_seconds, untimed_steps = 0.0, 0  # untimed: steps of the window left out of its tokens/s (compiling)
    window_loss = torch.zeros((), device=accelerator.device)  # summed micro-step losses since the last log
    window_count, window_start, final_train_loss = 0, time.perf_counter(), math.nan
    progress = tqdm(total=cfg.max_steps, disable=not accelerator.is_local_main_process, desc="train")

    # CPU: dropout masks from torch.rand, not the serial bernoulli_ (see scl_hf/cpu_kernels.py)
    with cpu_training_kernels(model):
        for step in range(cfg.max_steps):
            # learning rate of this optimizer step, identical on every process
            lr = learning_rate_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # forward/backward on this process's slice of each global micro-batch; gradients sync on the last
            for _ in range(cfg.gradient_accumulation_steps):
                all_inputs, all_targets = stream.next_batch(world * batch)
                # mean over the targets of the whole global micro-batch (blocks hold different numbers of
                # targets): each process divides its sum by the global count, times world because DDP averages
                num_targets = (all_targets != IGNORE_INDEX).sum().clamp(min=1).item()
                inputs = all_inputs[rank * batch: (rank + 1) * batch].to(accelerator.device)
                targets = all_targets[rank * batch: (rank + 1) * batch].to(accelerator.device)
                with accelerator.accumulate(wrapped):
                    logits = forward(input_ids=inputs, use_cache=False, **document_inputs(inputs, bos_id)).logits
                    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                                           reduction="sum") * (world / num_targets)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(wrapped.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                window_loss += loss.detach()
                window_count += 1
            done = step + 1
            if step == 0 and cfg.torch_compile:  # the compilation: counted apart, not in tokens/s
                window_loss.item()  # waits for the device
                compile_seconds = time.perf_counter() - window_start
                window_start, untimed_steps = time.perf_counter(), 1
            # validation: keep the weights whenever the held-out loss improves; stop when it has not for a while
            if done % cfg.eval_steps == 0 or done == cfg.max_steps:
                eval_start = time.perf_counter()
                val_loss = evaluate_loss(wrapped, val_inputs, val_targets, accelerator, batch, bos_id)
                eval_seconds = time.perf_counter() - eval_start
                val_record = {"step": done, "val_loss": val_loss, "seconds": eval_seconds}
                accelerator.log({"train/val_loss": val_loss}, step=step_offset + done)
                if best_state is None or val_loss < best_val or math.isnan(best_val):
                    best_val, best_step, stale = val_loss, done, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                # every process holds the same reduced val_loss, so all of them stop at the same step
                stopped_early = cfg.early_stopping_patience is not None and stale >= cfg.early_stopping_patience
                validation_seconds += eval_seconds
                window_start += time.perf_counter() - eval_start  # tokens/s counts training time only
            else:
                val_record = None
            # logging: mean training loss over the window, all processes
            if done % cfg.logging_steps == 0 or done == cfg.max_steps or stopped_early:
                mean_loss = accelerator.reduce(window_loss / window_count, reduction="mean").item()
                now = time.perf_counter()
                steps_in_window = window_count // cfg.gradient_accumulation_steps - untimed_steps
                record = {"step": done, "loss": mean_loss, "lr": lr,
                          "tokens_per_second": steps_in_window * tokens_per_step / max(now - window_start, 1e-9)}
                history.append(record)
                accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step_offset + done)
                progress.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{record['tokens_per_second']:.0f}",
                                     lr=f"{lr:.2e}")
                final_train_loss = mean_loss
                window_loss.zero_()
                window_count, window_start, untimed_steps = 0, time.perf_counter(), 0
            if val_record is not None:
                history.append(val_record)
            progress.update(1)
            if stopped_early:
                break
    progress.close()

    # hand back the caller's model with the best weights, forward unpatched from mixed precision
    accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False)
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        best_val_loss=best_val,
        best_step=best_step,
        steps=done,
        final_train_loss=final_train_loss,
        train_tokens=done * tokens_per_step,
        seconds=time.perf_counter() - start,
        stopped_early=stopped_early,
        validation_seconds=validation_seconds,
        compile_seconds=compile_seconds,
        history=history,
    )
