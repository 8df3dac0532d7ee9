package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train"
)

func newGenerateCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var modelDir, system string
	var cfg train.SampleConfig
	var asJSON, noCache bool
	cmd := &cobra.Command{
		Use:   "generate --model DIR [PROMPT]",
		Short: "Sample a reply from a checkpoint, with its chat template",
		Long: `Sample the assistant's reply to PROMPT (or to standard input when no PROMPT
is given) from a checkpoint in the Hugging Face layout, such as the output of
'sieve train': the prompt is rendered with the tokenizer's chat template, and
generation stops at the end of the assistant's turn or after
--max-new-tokens. Greedy by default; --temperature and --top-p sample.
Each layer's keys and values are kept (a key/value cache), so a new token
runs one row through the model; --no-kv-cache recomputes the whole sequence
for every token instead (the same tokens, slower).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelDir == "" {
				return usageError("generate: --model DIR is required")
			}
			if cfg.Temperature < 0 || cfg.TopP < 0 || cfg.TopP > 1 || cfg.MaxNewTokens < 1 {
				return usageError("generate: want --temperature ≥ 0, --top-p in [0, 1] and --max-new-tokens ≥ 1")
			}
			prompt := strings.Join(args, " ")
			if len(args) == 0 {
				data, err := io.ReadAll(stdin)
				if err != nil {
					return fmt.Errorf("generate: reading the prompt: %w", err)
				}
				prompt = strings.TrimSpace(string(data))
			}
			if prompt == "" {
				return usageError("generate: empty prompt")
			}
			if _, err := os.Stat(modelDir); err != nil {
				return usageError("generate: --model: %v", err)
			}
			g, err := train.LoadGenerator(modelDir)
			if err != nil {
				return err
			}
			g.NoCache = noCache
			var msgs []datasets.Message
			if system != "" {
				msgs = append(msgs, datasets.Message{Role: datasets.RoleSystem, Content: system})
			}
			msgs = append(msgs, datasets.Message{Role: datasets.RoleUser, Content: prompt})
			ids := g.Tok.Chat().EncodePrompt(msgs)
			started := time.Now()
			// Stream the reply as it comes, whole characters at a time.
			var out []int
			printed := ""
			emit := func(id int) bool {
				out = append(out, id)
				if asJSON {
					return true
				}
				text := g.Tok.DecodeSkipSpecial(out)
				if strings.HasPrefix(text, printed) && utf8.ValidString(text) {
					fmt.Fprint(stdout, text[len(printed):])
					printed = text
				}
				return true
			}
			if _, err := g.Generate(ids, cfg, emit); err != nil {
				return err
			}
			reply := g.Tok.DecodeSkipSpecial(out)
			secs := time.Since(started).Seconds()
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetEscapeHTML(false)
				return enc.Encode(map[string]any{"prompt": prompt, "reply": reply, "prompt_tokens": len(ids),
					"new_tokens": len(out), "tokens_per_s": float64(len(out)) / max(secs, 1e-9)})
			}
			if strings.HasPrefix(reply, printed) {
				fmt.Fprint(stdout, reply[len(printed):])
			}
			fmt.Fprintln(stdout)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&modelDir, "model", "", "checkpoint directory (config.json, model.safetensors, tokenizer files)")
	fl.StringVar(&system, "system", "", "system message before the prompt")
	fl.IntVar(&cfg.MaxNewTokens, "max-new-tokens", 256, "most tokens to generate")
	fl.Float64Var(&cfg.Temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fl.Float64Var(&cfg.TopP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	fl.Uint64Var(&cfg.Seed, "seed", 0, "seed of the sampler")
	fl.BoolVar(&noCache, "no-kv-cache", false, "recompute the whole sequence for every new token (no key/value cache)")
	fl.BoolVar(&asJSON, "json", false, "print the prompt, reply and token counts as one JSON object")
	return cmd
}
