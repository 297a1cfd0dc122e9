#!/usr/bin/python3
"""tokenizer_compare.py: our byte-level BPE against SentencePiece's BPE, trained on
the same text at the same vocabulary size; compression = tokens per byte on
held-out text (lower is better). Also checks the GPT-2 export: a plain Python BPE
reading only vocab.json + merges.txt must give our ids on every held-out line.

    /usr/bin/python3 bench/tokenizer_compare.py [--build build] [--vocab 8192] [--threads 2]
        [--corpus FILE --heldout FILE]

Without --corpus/--heldout both sides use the debian-descriptions corpus (short and
long texts of the train split to train, of the test split to measure), written out
by build/bench/bench_text --write-corpus (needs `sh tools/deps.sh torch`, which
installs python3-sentencepiece and fetches the lists). SentencePiece runs as BPE
with byte_fallback (so, like ours, it never needs UNK), identity normalisation (it
sees the same bytes), every training line (input_sentence_size=0) and otherwise its
defaults; its vocabulary counts its 3 specials and 256 byte pieces as ours does.
Exits 1 when ours is more than 5% worse, or the export check fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def byte_class(c):
    if c >= 0x80 or 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A:
        return 0  # letter
    if 0x30 <= c <= 0x39:
        return 1  # digit
    if c == 0x20 or 0x09 <= c <= 0x0D:
        return 2  # whitespace
    return 3


MAX_CHUNK = 64


def chunks(s):
    """The chunker of src/text/util.c (ct_text_chunk), in Python."""
    p, n = 0, len(s)
    while p < n:
        i, cl = 0, byte_class(s[p])
        done = False
        if cl == 2:
            if s[p] == 0x20 and p + 1 < n and byte_class(s[p + 1]) != 2:
                i, cl = 1, byte_class(s[p + 1])
            else:
                while p + i < n and byte_class(s[p + i]) == 2:
                    i += 1
                if p + i < n and i > 1 and s[p + i - 1] == 0x20:
                    i -= 1
                done = True
        if not done:
            while p + i < n and byte_class(s[p + i]) == cl:
                i += 1
        i = min(i, MAX_CHUNK)
        yield s[p:p + i]
        p += i


def gpt2_bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Gpt2Bpe:
    """Byte-level BPE from vocab.json + merges.txt alone (GPT-2's algorithm)."""

    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0] == "#version: 0.2", lines[0]
        self.rank = {}
        for r, line in enumerate(l for l in lines[1:] if l):
            a, b = line.split(" ")
            self.rank.setdefault((a, b), r)
        self.b2u = gpt2_bytes_to_unicode()
        self.cache = {}

    def encode_chunk(self, c):
        if c in self.cache:
            return self.cache[c]
        sym = [self.b2u[b] for b in c]
        while len(sym) > 1:
            best = min(range(len(sym) - 1), key=lambda i: self.rank.get((sym[i], sym[i + 1]), 1 << 30))
            pair = (sym[best], sym[best + 1])
            if pair not in self.rank:
                break
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == pair:
                    out.append(pair[0] + pair[1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            sym = out
        ids = [self.vocab[s] for s in sym]
        self.cache[c] = ids
        return ids

    def encode(self, line):
        ids = []
        for c in chunks(line):
            ids += self.encode_chunk(c)
        return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--corpus")
    ap.add_argument("--heldout")
    args = ap.parse_args()
    import sentencepiece as spm

    bench = os.path.join(args.build, "bench", "bench_text")
    with tempfile.TemporaryDirectory() as tmp:
        train, held = args.corpus, args.heldout
        if not train or not held:
            subprocess.run([bench, "--write-corpus", tmp], check=True)
            train, held = os.path.join(tmp, "train.txt"), os.path.join(tmp, "heldout.txt")
        with open(held, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l]
        nbytes = sum(len(l) for l in lines)

        # ours
        gdir = os.path.join(tmp, "gpt2")
        os.mkdir(gdir)
        idsf = os.path.join(tmp, "ids.txt")
        t0 = time.time()
        out = subprocess.run([bench, "--corpus", train, "--heldout", held, "--vocab", str(args.vocab),
                              "--threads", str(args.threads), "--export", gdir, "--ids", idsf],
                             check=True, capture_output=True, text=True).stdout
        ours_s = time.time() - t0
        print(out, end="")
        ours = float([l for l in out.splitlines() if l.startswith("tokens_per_byte")][-1].split()[1])

        # SentencePiece BPE on the same lines
        t0 = time.time()
        spm.SentencePieceTrainer.train(
            input=train, model_prefix=os.path.join(tmp, "sp"), model_type="bpe", vocab_size=args.vocab,
            byte_fallback=True, normalization_rule_name="identity", input_sentence_size=0,
            max_sentence_length=1 << 20, num_threads=args.threads, minloglevel=2)
        sp_train_s = time.time() - t0
        sp = spm.SentencePieceProcessor(model_file=os.path.join(tmp, "sp.model"))
        # SentencePiece takes Unicode strings: a line of invalid UTF-8 (rare) is
        # given with replacement characters, the byte count stays ours
        sp_tokens = sum(len(x) for x in sp.encode([l.decode("utf-8", "replace") for l in lines]))
        sp_tpb = sp_tokens / nbytes

        # the export, read back by a plain GPT-2 BPE
        g = Gpt2Bpe(gdir)
        with open(idsf) as f:
            ours_ids = [[int(x) for x in l.split()] for l in f.read().split("\n")[:len(lines)]]
        same = sum(g.encode(l) == i for l, i in zip(lines, ours_ids))

    ratio = ours / sp_tpb
    print(f"== held-out {len(lines)} lines, {nbytes / 1e6:.2f} MB, vocabulary {args.vocab}")
    print(f"{'tokenizer':<28} {'tokens/byte':>12} {'train s':>9}")
    print(f"{'contrast byte-level BPE':<28} {ours:>12.5f} {ours_s:>9.1f}   (train + encode + export)")
    print(f"{'SentencePiece BPE':<28} {sp_tpb:>12.5f} {sp_train_s:>9.1f}")
    print(f"ratio contrast / SentencePiece: {ratio:.4f} (target <= 1.05)")
    print(f"GPT-2 export read back by a plain BPE: {same}/{len(lines)} lines give our ids")
    ok = ratio <= 1.05 and same == len(lines)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
