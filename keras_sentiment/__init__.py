"""keras-sentiment: masked recurrent and BERT-backed binary sentiment models."""
