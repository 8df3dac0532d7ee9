// Package model is sieve's Llama-architecture language model in float32:
// the forward and backward passes written by hand on gonum's blas32, the
// Hugging Face config.json and safetensors formats, and the parameter
// names of transformers' LlamaForCausalLM, so that checkpoints go both
// ways between sieve and transformers.
//
// # Architecture
//
// With D = hidden_size, F = intermediate_size, L = num_hidden_layers,
// H = num_attention_heads, KV = num_key_value_heads, hd = head_dim
// (hidden_size/H by default) and V = vocab_size, a batch of n = B·T
// tokens goes through
//
//	x   = E[ids]                                  E [V, D]      x [n, D]
//	L × {
//	  h = RMSNorm(x)·w₁                           r = 1/√(mean(x²)+ε)
//	  q = rope(h·Wqᵀ), k = rope(h·Wkᵀ), v = h·Wvᵀ   Wq [H·hd, D], Wk, Wv [KV·hd, D]
//	  y = softmax(q·kᵀ/√hd + mask)·v                query head j uses key/value head j/(H/KV)
//	  x = x + y·Woᵀ                               Wo [D, H·hd]
//	  h = RMSNorm(x)·w₂
//	  x = x + (silu(h·Wgᵀ) ∘ h·Wuᵀ)·Wdᵀ            Wg, Wu [F, D], Wd [D, F]
//	}
//	logits = RMSNorm(x)·w·Wlmᵀ                    Wlm [V, D] (= E when tied)   logits [n, V]
//	loss   = mean over counted tokens of −log softmax(logits)[target]
//
// Rotary embeddings follow Hugging Face's rotate-half convention: for
// i < hd/2, angle θᵢ = pos / rope_theta^(2i/hd), the pair (x[i],
// x[i+hd/2]) is rotated by θᵢ. The mask lets a token see itself and the
// earlier tokens of its segment only (see Batch), so packed samples never
// attend to each other, and positions restart with each sample. The
// model has no biases, no dropout and only the default rotary scaling.
//
// # Layout and units
//
// Every matrix is row-major float32. Linear weights are [out, in], as
// torch.nn.Linear stores them, so a layer computes y = x·Wᵀ. Params holds
// all weights in one flat slice (Data) with views named as in
// LlamaForCausalLM's state dict (model.embed_tokens.weight,
// model.layers.{i}.self_attn.q_proj.weight, ..., model.norm.weight,
// lm_head.weight). The loss is in nats per counted token.
//
// # Forward and backward
//
// New allocates a Model with a workspace for batches of up to maxB×maxT
// tokens: the activations of every layer (including the attention
// probabilities, B·H·T² values per layer) and the gradient scratch.
// Forward(batch) returns the loss and keeps the activations; Backward adds
// the gradients of that loss into Model.G (a Params of the same layout),
// so that micro-batches accumulate (BackwardScaled weights each one);
// ZeroGrad clears them. Each layer's forward and backward sit side by side
// in layers.go. Matrix products go through blas32.Gemm, so that a faster
// implementation installed with blas32.Use (OpenBLAS through
// gonum.org/v1/netlib, say) speeds up the model without changes; with
// gonum's own kernels the backward products are run in the A·Bᵀ form that
// those kernels compute fastest. Element-wise work and attention are
// split over GOMAXPROCS goroutines.
//
// # Checkpoints
//
// ReadConfig/WriteConfig read and write config.json with LlamaConfig's
// keys (other keys are kept); Params.LoadSafetensors and Load read
// safetensors files (F32, BF16, F16, F64), single or sharded through
// model.safetensors.index.json; Params.Save writes config.json and
// model.safetensors (F32, BF16 or F16) that transformers'
// AutoModelForCausalLM.from_pretrained loads.
//
// # Verification
//
// The tests check every layer and the whole model against central
// differences of an independent float64 implementation, packing against
// separate samples, and loss, logits and all gradients against PyTorch
// (testdata/parity.py writes the golden files; it also checks them
// against transformers' LlamaForCausalLM and loads the checkpoints the Go
// test writes). BenchmarkTrainStep measures training tokens/s on the
// reference configuration.
package model
