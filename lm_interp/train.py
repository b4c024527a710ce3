"""Training the tiny GPT-2 on the generated corpus, and its standard held-out evaluation.

`train_tiny_lm` builds the world and corpus from a seed, trains a word-level tokenizer,
trains a small `GPT2LMHeadModel` (AdamW, warm-up then cosine decay, one CPU thread by
default), evaluates it on held-out prompts (`evaluate_tiny`) and writes the checkpoint
folder atomically: ``model.safetensors``, ``config.json``, the tokenizer files and
``recipe.json`` (config, seed, command, metrics, timings).

Head dropout (`LMTrainConfig.head_dropout`) zeroes whole attention heads per sequence during
training (rescaled by ``1/(1-p)``), an experimental knob for redundant / backup heads.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from common.atomic import atomic_directory
from lm_interp.machinery.metrics import evaluate_facts, evaluate_ioi
from lm_interp.models.corpus import DEFAULT_MIX, fact_prompts, ioi_prompts, sentences
from lm_interp.models.tokenizer import train_word_tokenizer
from lm_interp.models.world import World, make_world

log = logging.getLogger(__name__)


@dataclass
class LMTrainConfig:
    """Hyper-parameters of the tiny model and its training run (all recorded in ``recipe.json``)."""

    seed: int = 0
    world_seed: int = 0
    steps: int = 1800
    batch_size: int = 64
    block_size: int = 32          # tokens per training sequence (after the BOS token)
    n_positions: int = 64         # the model's context length (evaluation prompts may be longer than blocks)
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    dropout: float = 0.0
    head_dropout: float = 0.0
    n_examples: int = 20000       # training sequences generated (sampled with replacement)
    tokenizer_sentences: int = 60000
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    threads: int = 1
    eval_ioi_prompts: int = 240
    log_every: int = 100
    eval_every: int = 300         # > 0: quick held-out IOI / fact evaluation every so many steps (logged)

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.block_size + 1 > self.n_positions:
            raise ValueError(f"block_size + 1 = {self.block_size + 1} exceeds n_positions {self.n_positions}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def build_examples(world: World, tokenizer, n_examples: int, block_size: int, seed: int,
                   mix: dict[str, float] | None = None) -> torch.Tensor:
    """``[n_examples, block_size + 1]`` token ids: BOS, then whole sentences packed and cut at the end."""
    stream = sentences(world, seed, mix, "train")
    bos = tokenizer.bos_token_id
    rows = np.empty((n_examples, block_size + 1), dtype=np.int64)
    for i in range(n_examples):
        ids = [bos]
        while len(ids) < block_size + 1:
            chunk = list(itertools.islice(stream, 4))
            for enc in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
                ids.extend(enc)
        rows[i] = ids[:block_size + 1]
    return torch.from_numpy(rows)


def make_model(config: LMTrainConfig, tokenizer):
    """A freshly initialised `GPT2LMHeadModel` for `config` (seeded by the caller)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.d_model,
                     n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
                     embd_pdrop=config.dropout, attn_pdrop=config.dropout, bos_token_id=tokenizer.bos_token_id,
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg)


def add_head_dropout(model, p: float, generator: torch.Generator) -> list:
    """Forward pre-hooks on every ``attn.c_proj`` that zero whole heads per sequence in training mode.

    Returns the hook handles (remove them before saving or evaluating elsewhere).
    """
    n_head = model.config.n_head

    def pre_hook(module, args):
        if not module.training or p == 0.0:
            return None
        (x,) = args  # [batch, pos, n_head * d_head]: heads concatenated before the output projection
        b, t, d = x.shape
        keep = (torch.rand(b, 1, n_head, 1, generator=generator) >= p).to(x.dtype) / (1.0 - p)
        return ((x.view(b, t, n_head, d // n_head) * keep).view(b, t, d),)

    return [block.attn.c_proj.register_forward_pre_hook(pre_hook) for block in model.transformer.h]


def evaluate_tiny(model, tokenizer, world: World, n_ioi: int = 240, seed: int = 12345) -> dict:
    """Held-out evaluation of a tiny model (see ``docs/lm.md`` for what is held out).

    * ``ioi_heldout``: held-out templates with held-out name pairs;
    * ``ioi_heldout_pairs``: training templates with held-out name pairs;
    * ``facts_heldout``: every fact through its relation's held-out paraphrase templates;
    * ``facts_train_templates``: every fact through its training templates.
    """
    was_training = model.training
    model.eval()
    out = {
        "ioi_heldout": evaluate_ioi(model, tokenizer, ioi_prompts(n_ioi, "heldout", seed=seed), True),
        "ioi_heldout_pairs": evaluate_ioi(model, tokenizer, ioi_prompts(n_ioi, "train", seed=seed,
                                                                        pair_split="heldout"), True),
        "facts_heldout": evaluate_facts(model, tokenizer, fact_prompts(world, "heldout"), True),
        "facts_train_templates": evaluate_facts(model, tokenizer, fact_prompts(world, "train"), True),
    }
    model.train(was_training)
    return out


def _quick_eval(model, tokenizer, world: World) -> dict:
    """IOI accuracy / logit diff on 48 held-out prompts and held-out fact recall, for learning curves."""
    model.eval()
    ioi = evaluate_ioi(model, tokenizer, ioi_prompts(48, "heldout", seed=99), True)
    facts = evaluate_facts(model, tokenizer, fact_prompts(world, "heldout"), True)
    model.train()
    return {"ioi_accuracy": round(ioi["accuracy"], 3), "ioi_logit_diff": round(ioi["logit_diff"], 2),
            "fact_recall": round(facts["recall"], 3)}


def _lr_at(step: int, config: LMTrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    frac = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def train_tiny_lm(config: LMTrainConfig, out_dir: str | Path | None = None, progress: bool = True,
                  command: str | None = None, callback: Callable[[int, float], None] | None = None) -> dict:
    """Train the tiny model; write the checkpoint folder to `out_dir` (atomically) if given.

    :param config: hyper-parameters and seeds.
    :param out_dir: checkpoint folder (replaced as a whole); ``None`` trains and evaluates only.
    :param progress: show a tqdm bar over steps.
    :param command: the command line recorded in ``recipe.json`` (default: ``sys.argv``).
    :param callback: called as ``callback(step, loss)`` after every step.
    :returns: the recipe dict (config, metrics, timings, losses); the trained model is under
        the ``"model"`` key and its tokenizer under ``"tokenizer"`` (not written to JSON).
    """
    torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    t_start = time.perf_counter()
    world = make_world(config.world_seed)
    with _output_folder(out_dir) as folder:
        tok_texts = itertools.islice(sentences(world, config.seed, config.mix, "train"), config.tokenizer_sentences)
        tokenizer = train_word_tokenizer(tok_texts, folder)
        data = build_examples(world, tokenizer, config.n_examples, config.block_size, config.seed + 1, config.mix)
        t_data = time.perf_counter() - t_start
        log.info("vocab %d, %d training sequences of %d tokens (%.1f s)", len(tokenizer), len(data),
                 config.block_size + 1, t_data)
        model = make_model(config, tokenizer)
        n_params = sum(p.numel() for p in model.parameters())
        gen = torch.Generator().manual_seed(config.seed + 2)
        handles = add_head_dropout(model, config.head_dropout, gen) if config.head_dropout > 0 else []
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
        steps = range(config.steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="train tiny LM", unit="step")
        losses: list[float] = []
        curve: list[dict] = []
        model.train()
        t_train = time.perf_counter()
        for step in steps:
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, config)
            rows = torch.randint(0, len(data), (config.batch_size,), generator=gen)
            batch = data[rows]
            logits = model(batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if callback is not None:
                callback(step, losses[-1])
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                recent = float(np.mean(losses[-config.log_every:]))
                log.info("step %d loss %.4f", step + 1, recent)
                if progress:
                    steps.set_postfix(loss=f"{recent:.3f}")
            if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
                quick = _quick_eval(model, tokenizer, world)
                curve.append({"step": step + 1, **quick})
                log.info("step %d: %s", step + 1, quick)
        train_s = time.perf_counter() - t_train
        for h in handles:
            h.remove()
        model.eval()
        metrics = evaluate_tiny(model, tokenizer, world, config.eval_ioi_prompts)
        recipe = {
            "what": "tiny GPT-2 trained on the generated lm_interp corpus (word-level tokenizer)",
            "config": asdict(config),
            "command": command if command is not None else " ".join(sys.argv),
            "n_params": n_params, "vocab_size": len(tokenizer),
            "train_seconds": round(train_s, 1), "data_seconds": round(t_data, 1),
            "seconds_per_step": round(train_s / config.steps, 4),
            "final_loss": float(np.mean(losses[-config.log_every:])),
            "loss_curve": [round(float(np.mean(losses[i:i + config.log_every])), 4)
                           for i in range(0, len(losses), config.log_every)],
            "eval_curve": curve,
            "metrics": metrics,
            "torch": torch.__version__,
        }
        model.save_pretrained(folder)
        (folder / "recipe.json").write_text(json.dumps(recipe, indent=1))
    return {**recipe, "model": model, "tokenizer": tokenizer}


@contextlib.contextmanager
def _output_folder(out_dir: str | Path | None) -> Iterator[Path]:
    """The checkpoint folder, written atomically; a throw-away folder when `out_dir` is None."""
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="tiny-lm-") as tmp:
            yield Path(tmp)
    else:
        with atomic_directory(out_dir) as folder:
            yield folder
