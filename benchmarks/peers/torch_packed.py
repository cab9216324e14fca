"""Peer (1): the seeds' PyTorch design, on CPU.

`nn.Embedding` -> 2-layer bidirectional `nn.LSTM` over `pack_padded_sequence` -> final forward
and backward states -> `nn.Linear`, as in the PyTorch sentiment tutorials the package replaces;
`config["arch"]` "bigru" makes it an `nn.GRU`, `config["pooling"]` "max" the maximum over each text's
real positions (unpacked, padding masked) instead of the final states.
Its own tokenization (torchtext's `basic_english` rules: lowercase, punctuation split off), its
own vocabulary of the most frequent words, truncation to `max_length`, and padding per batch in
the collate step. Only the benchmarks import this (torch is in the `bench` extra).
"""

import re
from collections import Counter

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

# torchtext's basic_english: the same patterns and replacements.
_PATTERNS = [(re.compile(p), r) for p, r in [
    (r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "), (r"\(", " ( "),
    (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " ")]]
PAD, UNK = 0, 1


def tokenize(text):
    text = text.lower()
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text.split()


def build_vocab(texts, max_size):
    counts = Counter(token for text in texts for token in tokenize(text))
    words = [w for w, _ in counts.most_common(max_size - 2)]
    return {w: i + 2 for i, w in enumerate(words)}


def encode(texts, vocab, max_length):
    """Lists of token ids, truncated to `max_length` (at least one token each)."""
    return [[vocab.get(t, UNK) for t in tokenize(text)[:max_length]] or [UNK] for text in texts]


def collate(ids, labels=None):
    """Pad one batch to its longest text: `(tokens [batch, len], lengths [batch], labels)`."""
    tokens = pad_sequence([torch.tensor(x, dtype=torch.long) for x in ids], batch_first=True, padding_value=PAD)
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    return tokens, lengths, None if labels is None else torch.tensor(labels, dtype=torch.float32)


class BiRecurrent(nn.Module):
    def __init__(self, vocab_size, embedding_dim=100, hidden_dim=128, num_layers=2, dropout=0.5, cell="lstm",
                 pooling="last"):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        recurrent = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = recurrent(embedding_dim, hidden_dim, num_layers=num_layers, bidirectional=True,
                             dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim * 2, 1)

    def forward(self, tokens, lengths):
        embedded = self.dropout(self.embedding(tokens))  # [batch, seq_len, emb_dim]
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, hidden = self.rnn(packed)
        if self.pooling == "max":
            states, _ = pad_packed_sequence(states, batch_first=True, padding_value=float("-inf"))  # [batch, len, 2 * hidden]
            pooled = states.max(dim=1).values  # [batch, hidden_dim * 2]
        else:
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c); [layers * 2, batch, hidden_dim]
            pooled = torch.cat([hidden[-2], hidden[-1]], dim=1)  # [batch, hidden_dim * 2]
        return self.fc(self.dropout(pooled)).squeeze(1)  # [batch]


def make_model(vocab_size, config):
    torch.manual_seed(0)
    model = BiRecurrent(vocab_size, config["embedding_dim"], config["hidden_dim"], config["num_layers"],
                        cell="gru" if config["arch"] == "bigru" else "lstm", pooling=config["pooling"])
    return model, torch.optim.Adam(model.parameters(), lr=config["learning_rate"])


def train_batches(model, optimizer, batches):
    """One pass over `(tokens, lengths, labels)` batches."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    for tokens, lengths, labels in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(tokens, lengths), labels)
        loss.backward()
        optimizer.step()


def train_from_text(model, optimizer, vocab, texts, labels, batch_size, max_length):
    """End to end as the seeds do it: tokenize, then per batch pad, pack and step."""
    ids = encode(texts, vocab, max_length)
    batches = (collate(ids[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(ids), batch_size))
    train_batches(model, optimizer, batches)


@torch.no_grad()
def predict_from_text(model, vocab, texts, batch_size, max_length):
    model.eval()
    logits = []
    for i in range(0, len(texts), batch_size):
        tokens, lengths, _ = collate(encode(texts[i : i + batch_size], vocab, max_length))
        logits.append(model(tokens, lengths))
    return torch.cat(logits).numpy()
