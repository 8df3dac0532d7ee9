// Package train is sieve's built-in trainer: a byte-level BPE tokenizer,
// a Llama-architecture model in float32 on gonum, LoRA and QLoRA adapters,
// AdamW and checkpoints in the Hugging Face layout. It reads dataset
// versions through package datasets and never imports Beam.
package train
