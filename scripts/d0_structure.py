#!/usr/bin/env python3
"""How a released D_0 file's (query, prompt) pairs are laid out, and what that allows
`qpo offline-eval`'s coverage (the share of held-out queries whose written prompt D_0 logged
for them) to reach, for any policy that writes one prompt per query.

    scripts/d0_structure.py FILE [--splits N]

Prompts are grouped into blocks by the prompt_method family (InstructEval's collections
together, each *_rewrite family alone); for each block: its queries, how densely its prompts
are logged on them, and the label mix. Then the evidence on whether a query's block can be
told from its text (leave-one-out naive Bayes on words, against the same with the blocks
shuffled), and coverage on random 20% hold-outs for four reference policies. Standard
library only. Numbers for the authors' TweetEval file: docs/recipe.md (offline check).
"""
import argparse
import collections
import json
import math
import random
import re
import statistics as st

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("file")
ap.add_argument("--splits", type=int, default=20)
args = ap.parse_args()

recs = json.load(open(args.file))
P = collections.defaultdict(set)  # prompt -> queries it is logged for
Q = collections.defaultdict(set)  # query -> prompts logged for it
family, label = {}, {}
for r in recs:
    P[r["prompt"]].add(r["query"])
    Q[r["query"]].add(r["prompt"])
    method = r["prompt_method"].split("/")[-1]
    family[r["prompt"]] = method if method.endswith("_rewrite") else "instructeval"
    label[r["query"]] = r["label"]
blocks = sorted(set(family.values()))
block_queries = {b: set().union(*(P[p] for p in P if family[p] == b)) for b in blocks}
print(f"{len(recs)} records, {len(Q)} queries, {len(P)} prompts, {len(blocks)} blocks")
for b in blocks:
    ps = [p for p in P if family[p] == b]
    pairs = sum(len(P[p]) for p in ps)
    labels = dict(sorted(collections.Counter(label[q] for q in block_queries[b]).items()))
    print(f"  block {b:16s} {len(ps):3d} prompts x {len(block_queries[b]):3d} queries: "
          f"{pairs} pairs logged ({pairs / (len(ps) * len(block_queries[b])):.3f}), labels {labels}")
per_prompt = sorted(len(v) for v in P.values())
print(f"queries per prompt: min {per_prompt[0]}, median {st.median(per_prompt)}, "
      f"max {per_prompt[-1]} ({per_prompt[-1] / len(Q):.3f} of the queries)")
n_blocks = collections.Counter(sum(q in block_queries[b] for b in blocks) for q in Q)
print(f"queries by the number of blocks they are in: {dict(sorted(n_blocks.items()))}; "
      f"pairs outside their prompt's block: "
      f"{sum(1 for q in Q for p in Q[q] if q not in block_queries[family[p]])}")

labels = sorted(set(label.values()))
tab = [[sum(1 for q in block_queries[b] if label[q] == L) for L in labels] for b in blocks]
rows, cols = [sum(t) for t in tab], [sum(t[j] for t in tab) for j in range(len(labels))]
n = sum(rows)
chi = sum((tab[i][j] - rows[i] * cols[j] / n) ** 2 / (rows[i] * cols[j] / n)
          for i in range(len(blocks)) for j in range(len(labels)))
print(f"label x block: chi-square {chi:.2f} on {(len(blocks) - 1) * (len(labels) - 1)} df")

words = lambda s: re.findall(r"[a-z0-9#@']+", s.lower())
single = sorted(q for q in Q if sum(q in block_queries[b] for b in blocks) == 1)
block_of = {q: b for b in blocks for q in block_queries[b] if q in single}


def loo_naive_bayes(key):
    """Share of queries whose block a word-count naive Bayes trained on the others names."""
    right = 0
    for q in single:
        counts = {b: collections.Counter() for b in blocks}
        prior = collections.Counter()
        for o in single:
            if o != q:
                counts[key[o]].update(words(o))
                prior[key[o]] += 1
        vocab = len(set().union(*counts.values())) + 1
        totals = {b: sum(counts[b].values()) for b in blocks}
        guess = max(blocks, key=lambda b: math.log(prior[b] + 1) + sum(
            math.log((counts[b][w] + 1) / (totals[b] + vocab)) for w in words(q)))
        right += guess == key[q]
    return right / len(single)


majority = max(collections.Counter(block_of.values()).values()) / len(single)
text = loo_naive_bayes(block_of)
upper = text + 1.96 * math.sqrt(text * (1 - text) / len(single))
shuffled = []
for s in range(5):
    rng = random.Random(s)
    shuffled.append(loo_naive_bayes(dict(zip(single, rng.sample([block_of[q] for q in single],
                                                                  len(single))))))
print(f"block from the query's words (leave-one-out naive Bayes, {len(single)} one-block "
      f"queries): {text:.3f} (95% upper end {upper:.3f}); majority block {majority:.3f}; "
      f"blocks shuffled over queries {st.mean(shuffled):.3f} (5 shuffles)")


def coverage(hold):
    train = [q for q in Q if q not in hold]
    logged = collections.Counter(p for q in train for p in Q[q])
    single_best = max(P, key=lambda p: logged[p])
    by_label = {L: max(P, key=lambda p: sum(1 for q in train if label[q] == L and p in Q[q]))
                for L in labels}
    by_block = {b: max((p for p in P if family[p] == b), key=lambda p: logged[p]) for b in blocks}
    h = len(hold)
    return (sum(single_best in Q[q] for q in hold) / h,
            sum(by_label[label[q]] in Q[q] for q in hold) / h,
            sum(any(by_block[b] in Q[q] for b in blocks if q in block_queries[b]) for q in hold) / h,
            sum(any(p in logged for p in Q[q]) for q in hold) / h)


runs = []
for s in range(args.splits):
    rng = random.Random(100 + s)
    runs.append(coverage(set(rng.sample(sorted(Q), round(0.2 * len(Q))))))
names = ["the best single prompt of the training queries",
         "the best prompt for the query's true label",
         "the best prompt of the query's own block (block given)",
         "any logged prompt that training also logged (upper limit)"]
print(f"coverage on {args.splits} random 20% hold-outs, mean (min-max):")
for i, name in enumerate(names):
    v = [r[i] for r in runs]
    print(f"  {name:58s} {st.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})")
within = st.mean(r[2] for r in runs)
print(f"a policy naming the right block for a share a of queries covers about a x {within:.3f}: "
      f"coverage 0.5 needs a >= {0.5 / within:.2f}")
