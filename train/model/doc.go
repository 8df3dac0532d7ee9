// Package model is sieve's Llama-architecture language model in float32:
// the forward and backward passes written by hand on gonum's blas32, the
// Hugging Face config.json and safetensors formats, and the parameter
// names of transformers' LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM and Qwen3ForCausalLM, so that checkpoints go both
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
// model has no dropout.
//
// # Families
//
// Config.Family, from config.json's model_type, selects what differs
// from the above (any other model_type is refused with a line naming
// it):
//
//	llama     as above; rope_scaling (or rope_parameters) of type llama3
//	          rescales the rotary frequencies (Llama 3.1, 3.2, 3.3)
//	mistral   as above; its sliding window (sliding_window, 4096 when
//	          absent) makes no difference to rows of at most that many
//	          tokens, and New and NewDecoder refuse longer ones
//	qwen2     q = h·Wqᵀ + bq, k = h·Wkᵀ + bk, v = h·Wvᵀ + bv   bq [H·hd], bk, bv [KV·hd]
//	          (Qwen2, Qwen2.5; no bias on o_proj or the MLP)
//	qwen3     q = rope(RMSNorm_hd(h·Wqᵀ)·wq), k likewise with wk      wq, wk [hd]
//	          (q_norm, k_norm: each head's hd values normalised on their
//	          own, before the rotation; head_dim need not be D/H)
//
// The biases and q/k norm weights are trained with full fine-tuning and
// frozen with LoRA, as PEFT's bias "none" freezes them.
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
// implementation installed with blas32.Use speeds up the model without
// changes: package train/model/openblas installs OpenBLAS's sgemm when
// built with -tags openblas (cgo), about 10× faster than gonum's pure-Go
// kernels. With such an implementation the large products are split by
// rows of the result over GOMAXPROCS goroutines (OpenBLAS itself runs
// single-threaded) and the backward products pass their transposes as
// flags; with gonum's own kernels, which split the work themselves, the
// backward products run in the A·Bᵀ form that those kernels compute
// fastest. Element-wise work and attention are split over GOMAXPROCS
// goroutines; exponentials (softmax, cross-entropy, SwiGLU) run in AVX2
// assembly where the CPU has it (vecmath_amd64.s; build tag purego for
// the Go loops only).
//
// # Precision
//
// SetPrecision(PrecisionBF16) runs the linear layers' products (the
// projections and the head, forward and backward) on operands rounded to
// bfloat16 with float32 sums, as AVX512_BF16's VDPBF16PS computes them;
// weights, gradients, attention and the rest stay float32 (precision.go
// says where each rounding happens). It is emulated on the float32 GEMM;
// ResolvePrecision resolves fp32, bf16 or auto for a CPU's features.
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
// # LoRA and QLoRA
//
// EnableLoRA freezes the base and adds PEFT-style adapters to the
// targeted projections (q_proj, k_proj, v_proj, o_proj, gate_proj,
// up_proj, down_proj; all by default): for W [out, in],
//
//	y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ      A [r, in] (Kaiming-uniform, a = √5), B [out, r] (zeros)
//	s = α/r, or α/√r with rsLoRA
//
// All adapter weights and gradients live in two flat slices; Trainable
// returns them with PEFT's names
// (base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight, ...).
// With LoRA on, Backward computes the adapters' gradients and the input
// gradients through base and adapters, and no base gradient at all (the
// dW products, the head's and the embedding's are skipped; m.G is not
// touched). SaveAdapter and LoadAdapter write and read PEFT's
// adapter_config.json and adapter_model.safetensors; MergeLoRA folds the
// adapters into the weights (W += s·B·A) for Params.Save, and
// MergedParams returns merged weights without changing the model.
//
// QuantizeBase (QLoRA) stores the targeted projections of the frozen base
// in NF4, bitsandbytes' 4-bit NormalFloat with one float32 absmax per
// block of 64 values (4.5 bits per weight; no double quantization; see
// NF4 and QuantizeNF4), replaces P by a compact Params without their
// float32 copies (their Layer fields are nil) and releases G. Each such
// weight is dequantized into one reusable buffer right before its
// product, so QLoRA computes exactly what LoRA computes on the
// dequantized weights. Footprint reports the bytes held.
//
// # Verification
//
// The tests check every layer and the whole model against central
// differences of an independent float64 implementation, packing against
// separate samples, and loss, logits and all gradients against PyTorch
// (testdata/parity.py writes the golden files; it also checks them
// against transformers' LlamaForCausalLM and loads the checkpoints the Go
// test writes). Each family is compared with transformers' own model and
// PEFT's LoRA at the real configuration of a checkpoint users fine-tune
// (testdata/families.py; TestTransformersFamilies). LoRA is checked the same way: adapter gradients against
// central differences of the float64 reference with adapters (float32
// and NF4 bases), merge and save/load round trips, and PEFT parity
// (testdata/peft_parity.py runs transformers and peft on sieve's adapters
// and saves one of PEFT's own); NF4 against the NumPy reference
// testdata/nf4_reference.py, bit for bit. BenchmarkTrainStep measures
// training tokens/s on the reference configuration (MODE=lora or qlora
// for adapters of rank 8 on all projections).
package model
