#!/usr/bin/env python3
"""Golden token ids from HF `tokenizers` for the k2j tokenizer tests.

Usage: python3 tools/golden/tokenizer_ids.py TOKENIZER_JSON TEXTS_JSONL OUT_JSONL

TOKENIZER_JSON is any tokenizer.json (Qwen's, or the project's own demo tokenizer), or a directory
holding one. Each input line is {"text": ...}; each output line is {"text", "ids", "decoded"} in the
same order, where ids = encode(text, add_special_tokens=False).ids and
decoded = decode(ids, skip_special_tokens=False).
"""
import json
import os
import sys

from tokenizers import Tokenizer


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    tok_path, texts_path, out_path = argv[1:]
    if os.path.isdir(tok_path):
        tok_path = os.path.join(tok_path, "tokenizer.json")
    tok = Tokenizer.from_file(tok_path)
    n = 0
    with open(texts_path, encoding="utf-8") as fin, open(out_path, "w", encoding="utf-8", newline="\n") as fout:
        for line_no, line in enumerate(fin, 1):
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            ids = tok.encode(text, add_special_tokens=False).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            # ensure_ascii keeps every line pure ASCII, so no reader can split on U+2028 etc.
            fout.write(json.dumps({"text": text, "ids": ids, "decoded": decoded}, ensure_ascii=True) + "\n")
            n += 1
    print(f"wrote {n} lines to {out_path} (tokenizer {tok_path}, vocab {tok.get_vocab_size()})")


if __name__ == "__main__":
    main(sys.argv)
