// Package train is sieve's built-in trainer: it fine-tunes a Llama
// model (package train/model, with its tokenizer from train/tokenizer) on
// a dataset version, or trains a small one from scratch, and samples from
// the result. It reads dataset versions through package datasets and
// never imports Beam.
//
// # Data
//
// Run reads the train and test splits of a version (ReadSplits), renders
// each conversation with the tokenizer's chat template and keeps the
// assistant-only loss mask (Encode; a conversation longer than the row
// length is cut, one with no assistant token left is skipped, and both
// are counted in DataStats). Conversations are packed into rows of
// Config.SeqLen tokens, best fit decreasing (Pack), each attending only to
// itself (model.Batch segments), or put one per row and padded
// (Config.Pad). Each epoch visits the rows in an order drawn from
// Config.Seed and the epoch number alone, so a run can resume anywhere.
//
// # Optimisation
//
// An optimizer step runs Config.GradAccum micro-batches of
// Config.BatchSize rows forward and backward, weighting each micro-batch
// by its share of the step's counted tokens, so that the gradient is that
// of the mean loss per counted token over the whole step. Then, as in
// transformers' Trainer: the global gradient norm is clipped
// (ClipGradNorm, torch.nn.utils.clip_grad_norm_), AdamW updates the
// tensors Model.Trainable returns (AdamW, torch.optim.AdamW: decoupled
// weight decay, not on norm weights, bias-corrected moments, eps after
// the correction) with the learning rate of CosineSchedule (linear
// warmup, cosine decay to Config.MinLRRatio of the peak, as
// get_cosine_schedule_with_warmup). The moments are float32, every
// update is computed in float32 as torch does; testdata/optim_golden.py
// writes PyTorch's results for several steps, which the tests match
// within 1e-6 relative.
//
// With Options.LoRA the base model is frozen and Trainable returns PEFT
// LoRA adapters instead (Options.QLoRA also stores the frozen projections
// in NF4): the same loop trains them.
//
// Config.Precision (fp32, bf16 or auto) sets the arithmetic of the linear
// layers' products (model.ResolvePrecision on this CPU; auto is fp32
// where no hardware bf16 kernel exists, which is everywhere so far); the
// master weights, gradients and moments stay float32 either way, and the
// run records what it used and why (Plan, Result, trainer_state.json).
//
// # Outputs
//
// A run directory holds log.jsonl (one Record per line: step, epoch, loss,
// lr, grad_norm, tokens, tokens_per_s, elapsed; eval_loss on evaluation
// lines), checkpoint-STEP directories and the final model. Models are
// written in the Hugging Face layout (config.json with LlamaConfig's keys,
// model.safetensors, tokenizer.json, tokenizer_config.json with the chat
// template), which transformers loads as it is; a checkpoint adds
// trainer_state.json and optimizer.safetensors, and Options.Resume
// continues from one with the same losses as an uninterrupted run. A LoRA
// run writes PEFT adapters (adapter_config.json, adapter_model.safetensors)
// in its checkpoints and in Output/adapter, and the merged model in
// Output.
//
// # Sampling
//
// Generator continues a prompt greedily or by sampling with a temperature
// and a top-p nucleus, from a seed, and stops at the end of the
// assistant's turn; Chat renders a conversation with the chat template
// first. It keeps a key/value cache (model.Decoder), so each new token
// runs one row through the model; Generator.NoCache recomputes the whole
// sequence instead, with the same tokens.
//
// # Comparing and moving on
//
// Sweep trains a grid (or a random draw from it) of learning rates,
// epochs, LoRA ranks and alphas and sequence lengths one run after the
// other, sharing the data, the trained tokenizer and the encodings, and
// names the run of the lowest eval loss. Evaluate measures checkpoints'
// loss and perplexity on a split. Merge folds a LoRA adapter into its
// base as a full checkpoint; Export writes the run as an Axolotl YAML or
// a TRL SFTTrainer script on the version's Parquet shards.
package train
