#!/usr/bin/python3
"""Makes the tiny-config fixtures the C policy is tested against (tests/policy).

An independent PyTorch implementation of the PGDT policy (functional, written from the recipe,
sharing no code with pgdt_torch.py), cross-checked against `pgdt_torch.py ref`:

  /usr/bin/python3 tests/reference/make_fixtures.py [--pgdt PATH] [--out DIR]

1. runs `pgdt_torch.py ref --config tiny` into a temporary directory (weights, batch, grads,
   losses over 10 AdamW steps);
2. recomputes all of it here from the same weights and batch and fails unless both agree;
3. writes DIR (default tests/reference/tiny): weights/batch/grads/logits .safetensors, ref.json
   (losses, the cross-check's differences) and gen.json (greedy prompts at r* = 100 with the
   recipe's qpo rules: stop at the first eos, pad keys masked).

Needs torch (Debian's python3-torch 1.13 is enough); pgdt_torch.py defaults to
../shared/bench/pgdt_torch.py beside the repository ($QPO_PGDT_TORCH overrides).
"""
import argparse, json, math, os, struct, subprocess, sys, tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
QLEN = PLEN = 40
LAMBDA, LR, WD, CLIP, STEPS = 0.1, 1e-3, 1e-4, 0.25, 10
GEN_SCALE = 8.0


def read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    dt = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64}
    out = {}
    for k, v in head.items():
        a, b = v["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        out[k] = torch.frombuffer(buf, dtype=dt[v["dtype"]]).reshape(v["shape"]).clone()
    return out, meta


def write_st(path, tensors, meta=None):
    head, blobs, off = {}, [], 0
    names = {torch.float32: "F32", torch.int32: "I32"}
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous()
        b = t.numpy().tobytes()
        head[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        head["__metadata__"] = meta
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def layer_norm(x, W, name):
    return F.layer_norm(x, x.shape[-1:], W[name + ".weight"], W[name + ".bias"], 1e-5)


def attention(x, W, p, key_mask, n_head):
    B, T, C = x.shape
    hs = C // n_head
    qkv = x @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]  # Conv1D: [in, out]
    q, k, v = (t.reshape(B, T, n_head, hs).permute(0, 2, 1, 3) for t in qkv.split(C, -1))
    s = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(hs)
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool)) & key_mask.bool()[:, None, None, :]
    s = s.masked_fill(~allowed, float("-inf"))
    y = torch.einsum("bhts,bhsd->bhtd", s.softmax(-1), v).permute(0, 2, 1, 3).reshape(B, T, C)
    return y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]


def backbone(x, W, cfg, key_mask):
    x = x + W["wpe.weight"][: x.shape[1]]
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        x = x + attention(layer_norm(x, W, p + "ln_1"), W, p, key_mask, cfg["n_head"])
        h = layer_norm(x, W, p + "ln_2") @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]
        x = x + F.gelu(h, approximate="tanh") @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    return layer_norm(x, W, "ln_f")


def inputs(W, reward, qids, pids):
    """[R] [q..] [p..] embeddings after embed_ln (positions are added by the backbone)."""
    seg = W["embed_component.weight"]
    r = reward[:, None] * W["embed_return.weight"][:, 0] + W["embed_return.bias"] + seg[0]
    parts = [r[:, None], W["wte.weight"][qids.long()] + seg[1]]
    if pids.shape[1]:
        parts.append(W["wte.weight"][pids.long()] + seg[2])
    return layer_norm(torch.cat(parts, 1), W, "embed_ln")


def prompt_logits(W, h):
    return torch.relu(h @ W["mlp_head.weight"].t() + W["mlp_head.bias"]) @ W["wte.weight"].t()


def losses(W, b, cfg):
    B = b["reward"].shape[0]
    x = inputs(W, b["reward"], b["query_ids"], b["prompt_ids"])
    key_mask = torch.cat([torch.ones(B, 1, dtype=torch.int32), b["query_mask"], b["prompt_mask"]], 1)
    h = backbone(x, W, cfg, key_mask)
    logits = prompt_logits(W, h[:, QLEN:QLEN + PLEN])
    m = b["prompt_mask"].bool()
    ce = F.cross_entropy(logits[m], b["prompt_ids"][m].long())
    pred = h[:, 0] @ W["predict_return.weight"][0] + W["predict_return.bias"][0]
    mse = ((pred - b["reward"]) ** 2).mean()
    return logits, ce, mse


def train_losses(W, b, cfg):
    params = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    opt = torch.optim.AdamW(params.values(), lr=LR, weight_decay=WD)
    out = []
    for step in range(STEPS + 1):
        opt.zero_grad()
        _, ce, mse = losses(params, b, cfg)
        loss = ce + LAMBDA * mse
        loss.backward()
        out.append(dict(step=step, ce=ce.item(), mse=mse.item(), loss=loss.item()))
        if step == STEPS:
            break
        norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values()))
        coef = min(1.0, CLIP / (float(norm) + 1e-6))
        for p in params.values():
            p.grad.mul_(coef)
        opt.step()
    return out


def greedy(W, cfg, reward, qids, qmask):
    eos = cfg["vocab"] - 1
    outs = []
    for i in range(qids.shape[0]):
        toks = []
        while len(toks) < PLEN:
            p = torch.tensor([toks], dtype=torch.int32).reshape(1, len(toks))
            x = inputs(W, torch.tensor([reward]), qids[i:i + 1], p)
            km = torch.cat([torch.ones(1, 1, dtype=torch.int32), qmask[i:i + 1],
                            torch.ones(1, len(toks), dtype=torch.int32)], 1)
            h = backbone(x, W, cfg, km)
            nxt = int(prompt_logits(W, h[:, -1]).argmax(-1))  # first maximum: lowest id
            toks.append(nxt)
            if nxt == eos:
                break
        outs.append(toks)
    return outs


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main():
    ap = argparse.ArgumentParser()
    default_pgdt = os.environ.get("QPO_PGDT_TORCH",
                                  os.path.join(HERE, "..", "..", "..", "shared", "bench", "pgdt_torch.py"))
    ap.add_argument("--pgdt", default=default_pgdt)
    ap.add_argument("--out", default=os.path.join(HERE, "tiny"))
    a = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, a.pgdt, "ref", "--out", tmp, "--config", "tiny"], check=True,
                       stdout=subprocess.DEVNULL)
        W, meta = read_st(os.path.join(tmp, "weights.safetensors"))
        b, _ = read_st(os.path.join(tmp, "batch.safetensors"))
        g_ref, _ = read_st(os.path.join(tmp, "grads.safetensors"))
        ref = json.load(open(os.path.join(tmp, "ref.json")))
    cfg = json.loads(meta["config"])
    params = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    logits, ce, mse = losses(params, b, cfg)
    (ce + LAMBDA * mse).backward()
    grads = {k: p.grad for k, p in params.items()}
    mine = train_losses(W, b, cfg)
    diffs = dict(grads=max(rel(grads[k], g_ref[k]) for k in g_ref),
                 losses=max(abs(x["loss"] - y["loss"]) / abs(y["loss"]) for x, y in zip(mine, ref["losses"])))
    print(json.dumps(dict(cross_check_vs_pgdt_torch=diffs)))
    if diffs["grads"] > 1e-4 or diffs["losses"] > 1e-4:
        sys.exit("independent implementation disagrees with pgdt_torch.py ref")
    os.makedirs(a.out, exist_ok=True)
    write_st(os.path.join(a.out, "weights.safetensors"), W, meta)
    write_st(os.path.join(a.out, "batch.safetensors"), b)
    write_st(os.path.join(a.out, "grads.safetensors"), grads)
    write_st(os.path.join(a.out, "logits.safetensors"), {"logits": logits.detach()})
    json.dump(dict(config=cfg, batch=int(b["reward"].shape[0]), lambda_=LAMBDA, lr=LR, weight_decay=WD,
                   clip=CLIP, losses=mine, pgdt_torch_losses=ref["losses"], cross_check=diffs,
                   torch=torch.__version__),
              open(os.path.join(a.out, "ref.json"), "w"), indent=1)
    # Sharper weights than the N(0, 0.02) init, so prompts differ per query and stop at eos.
    Wg = {k: v * GEN_SCALE if v.dim() == 2 else v for k, v in W.items()}
    with torch.no_grad():
        gen = greedy(Wg, cfg, 100.0, b["query_ids"], b["query_mask"])
    json.dump(dict(reward=100.0, weight_scale_2d=GEN_SCALE, greedy=gen),
              open(os.path.join(a.out, "gen.json"), "w"))


if __name__ == "__main__":
    main()
