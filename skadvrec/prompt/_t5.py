"""The T5 backbone of the prompt family: building it, loading it, and a forward pass with
per-layer key/value prefixes.

``transformers`` supplies the T5 modules (``T5Config``, ``T5ForConditionalGeneration``: the
parameters, ``save_pretrained`` / ``from_pretrained``); it is imported lazily, so the package
imports without it and only fitting a prompt model needs the ``prompt`` extra.

The forward pass is written here, over the Hugging Face modules' own weights, rather than called
through ``model(...)``: prefix tuning needs extra keys and values in the *encoder* self-attention
too, which Hugging Face's T5 does not take (its ``past_key_values`` / cache reaches the decoder
only, and the cache API changes between major versions). Doing the attention here gives exact
Li & Liang prefix tuning for all three attention kinds (encoder self, decoder self, cross) and one
code path for every ``transformers`` version. Without a prefix it equals Hugging Face's forward
(tested). Prefix keys get no relative position bias and are never masked.
"""

from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["require_transformers", "build_t5", "load_t5", "encode", "decode", "t5_sizes"]

_HELP = ("the prompt family needs Hugging Face transformers: pip install 'skadvrec[prompt]' "
         "(or pip install transformers).")


def require_transformers():
    """Import ``transformers`` or raise a ModuleNotFoundError saying how to install it."""
    try:
        import transformers
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(_HELP, name="transformers") from exc
    return transformers


@contextlib.contextmanager
def _seeded(seed):
    """Run with torch's global CPU RNG seeded, restoring it afterwards (the Hugging Face
    initialisers draw from the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def build_t5(vocab_size, *, d_model, num_layers, num_heads, d_ff, dropout, seed):
    """A randomly initialised T5 (seeded) from a small config; no download."""
    tr = require_transformers()
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={num_heads}.")
    config = tr.T5Config(vocab_size=int(vocab_size), d_model=int(d_model),
                         d_kv=int(d_model) // int(num_heads), d_ff=int(d_ff),
                         num_layers=int(num_layers), num_decoder_layers=int(num_layers),
                         num_heads=int(num_heads), dropout_rate=float(dropout),
                         pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    with _seeded(seed):
        model = tr.T5ForConditionalGeneration(config)
    return model


def load_t5(path, vocab_size, *, seed):
    """A T5 checkpoint from a local directory (offline), its vocabulary resized to ours."""
    tr = require_transformers()
    if not os.path.isdir(path):
        raise ValueError(f"backbone={path!r} is not a directory; pass the directory of a T5 / "
                         "P5 checkpoint saved with save_pretrained, or 't5' for a fresh model.")
    try:
        model = tr.T5ForConditionalGeneration.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not load a T5 checkpoint from {path!r}: {exc}") from exc
    if model.get_input_embeddings().num_embeddings != vocab_size:
        with _seeded(seed):
            model.resize_token_embeddings(int(vocab_size))
    return model


def t5_sizes(model):
    """(d_model, n_heads, d_kv, n_encoder_layers, n_decoder_layers) of a T5 model."""
    c = model.config
    return (int(c.d_model), int(c.num_heads), int(c.d_kv), int(c.num_layers),
            int(c.num_decoder_layers))


# -- the forward pass ----------------------------------------------------------------------------

def dropout(x, p, gen):
    """Inverted dropout drawn from a torch generator (``gen=None`` or ``p=0``: identity)."""
    if gen is None or p <= 0:
        return x
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=gen)
    return x * keep / (1.0 - p)


def _rms(x, norm):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return norm.weight * (x * torch.rsqrt(var + norm.variance_epsilon)).to(x.dtype)


def _attention(att, h, kv, bias, prefix, p, gen):
    """T5 attention of ``h`` over ``kv`` (+ a key/value prefix): scores unscaled, as in T5."""
    B, Lq, _ = h.shape
    H, dk = att.n_heads, att.key_value_proj_dim
    q = att.q(h).view(B, Lq, H, dk).transpose(1, 2)
    k = att.k(kv).view(B, -1, H, dk).transpose(1, 2)
    v = att.v(kv).view(B, -1, H, dk).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) + bias
    if prefix is not None:
        pk, pv = prefix  # (1 or B, H, P, dk)
        scores = torch.cat([torch.matmul(q, pk.transpose(-1, -2)), scores], dim=-1)
        v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
    w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    w = dropout(w, p, gen)
    out = torch.matmul(w, v).transpose(1, 2).reshape(B, Lq, H * dk)
    return att.o(out)


def _ff(layer, x, act, p, gen):
    d = layer.DenseReluDense
    h = _rms(x, layer.layer_norm)
    if hasattr(d, "wi_0"):
        h = act(d.wi_0(h)) * d.wi_1(h)
    else:
        h = act(d.wi(h))
    return x + dropout(d.wo(dropout(h, p, gen)), p, gen)


def _act(model):
    from transformers.activations import ACT2FN

    return ACT2FN[model.config.dense_act_fn]


def _mask_bias(mask, dtype):
    """(B, L) 0/1 attention mask → additive bias (B, 1, 1, L)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def encode(model, input_ids, mask, prefix=None, gen=None):
    """Final encoder states (B, L, d_model). ``prefix``: a list, per encoder layer, of key /
    value prefix tensors ``(pk, pv)`` of shape (1 or B, n_heads, P, d_kv), or None. Dropout
    (``config.dropout_rate``) only when a generator ``gen`` is given."""
    p = float(model.config.dropout_rate)
    enc = model.encoder
    x = dropout(enc.embed_tokens(input_ids), p, gen)
    L = input_ids.shape[1]
    att0 = enc.block[0].layer[0].SelfAttention
    bias = att0.compute_bias(L, L, device=x.device).to(x.dtype) + _mask_bias(mask, x.dtype)
    act = _act(model)
    for i, blk in enumerate(enc.block):
        sa = blk.layer[0]
        h = _rms(x, sa.layer_norm)
        pre = None if prefix is None else prefix[i]
        x = x + dropout(_attention(sa.SelfAttention, h, h, bias, pre, p, gen), p, gen)
        x = _ff(blk.layer[1], x, act, p, gen)
    return dropout(_rms(x, enc.final_layer_norm), p, gen)


def decode(model, enc_out, enc_mask, decoder_ids, self_prefix=None, cross_prefix=None,
           gen=None):
    """Vocabulary logits (B, Ld, vocab) of the decoder on ``decoder_ids`` (causal)."""
    p = float(model.config.dropout_rate)
    dec = model.decoder
    y = dropout(dec.embed_tokens(decoder_ids), p, gen)
    Ld = decoder_ids.shape[1]
    att0 = dec.block[0].layer[0].SelfAttention
    causal = torch.ones(Ld, Ld, dtype=torch.bool, device=y.device).triu(1)
    self_bias = att0.compute_bias(Ld, Ld, device=y.device).to(y.dtype).masked_fill(
        causal, torch.finfo(y.dtype).min)
    cross_bias = _mask_bias(enc_mask, y.dtype)
    act = _act(model)
    for i, blk in enumerate(dec.block):
        sa, ca = blk.layer[0], blk.layer[1]
        h = _rms(y, sa.layer_norm)
        pre = None if self_prefix is None else self_prefix[i]
        y = y + dropout(_attention(sa.SelfAttention, h, h, self_bias, pre, p, gen), p, gen)
        h = _rms(y, ca.layer_norm)
        pre = None if cross_prefix is None else cross_prefix[i]
        y = y + dropout(_attention(ca.EncDecAttention, h, enc_out, cross_bias, pre, p, gen),
                        p, gen)
        y = _ff(blk.layer[2], y, act, p, gen)
    y = dropout(_rms(y, dec.final_layer_norm), p, gen)
    if getattr(model.config, "scale_decoder_outputs", model.config.tie_word_embeddings):
        y = y * (model.config.d_model ** -0.5)
    return model.lm_head(y)


def n_parameters(model):
    return int(sum(t.numel() for t in model.parameters()))
