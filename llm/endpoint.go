package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kind is the flavour of API an endpoint speaks.
type Kind string

const (
	// KindOpenAI is api.openai.com (the default). BaseURL defaults to
	// DefaultOpenAIURL and an API key is required.
	KindOpenAI Kind = "openai"
	// KindAzure is Azure OpenAI: BaseURL is the resource URL
	// (https://NAME.openai.azure.com), Deployment and APIVersion are
	// required and the key travels in the api-key header.
	KindAzure Kind = "azure"
	// KindOther is any OpenAI-compatible server (vLLM, Ollama,
	// llama.cpp, TGI, LiteLLM, …): BaseURL is required (usually ending in
	// /v1) and the API key is optional.
	KindOther Kind = "other"
)

// DefaultOpenAIURL is the base URL of KindOpenAI endpoints that give none.
const DefaultOpenAIURL = "https://api.openai.com/v1"

// Defaults for the zero values of Endpoint's limits.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxConcurrency = 8
	DefaultMaxRetries     = 5
)

// Endpoint is one model behind one chat-completions API, as a recipe
// names it. The zero values of the limits mean the defaults above (and
// no rate limit, no budget). An Endpoint holds the name of the
// environment variable with the API key, never the key, so its JSON and
// YAML forms are safe to log and to store in a manifest.
type Endpoint struct {
	// Name identifies the endpoint in the recipe and in every message.
	Name string `yaml:"name" json:"name"`
	// Kind is openai (default), azure or other.
	Kind Kind `yaml:"kind,omitempty" json:"kind,omitempty"`
	// BaseURL is the API root, e.g. https://api.openai.com/v1 or
	// http://localhost:8000/v1 (for azure the resource URL).
	BaseURL string `yaml:"base_url,omitempty" json:"base_url,omitempty"`
	// Model is the model name sent with every request (for azure it
	// defaults to Deployment and is used for caching and messages).
	Model string `yaml:"model,omitempty" json:"model,omitempty"`
	// APIKeyEnv is the NAME of the environment variable that holds the
	// API key, e.g. OPENAI_API_KEY; required for openai and azure.
	APIKeyEnv string `yaml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	// APIVersion (azure only), e.g. 2024-10-21.
	APIVersion string `yaml:"api_version,omitempty" json:"api_version,omitempty"`
	// Deployment (azure only) is the deployment name in the URL.
	Deployment string `yaml:"deployment,omitempty" json:"deployment,omitempty"`

	// Timeout bounds each HTTP attempt (default 60s); a timed-out attempt
	// is retried.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxConcurrency is the most requests in flight at once (default 8).
	MaxConcurrency int `yaml:"max_concurrency,omitempty" json:"max_concurrency,omitempty"`
	// RequestsPerMinute and TokensPerMinute pace requests (0: no limit).
	RequestsPerMinute int `yaml:"requests_per_minute,omitempty" json:"requests_per_minute,omitempty"`
	TokensPerMinute   int `yaml:"tokens_per_minute,omitempty" json:"tokens_per_minute,omitempty"`
	// MaxRetries is how many times a retryable failure is retried
	// (default 5; 0 means no retries).
	MaxRetries *int `yaml:"max_retries,omitempty" json:"max_retries,omitempty"`
	// Budget caps what the client may spend.
	Budget Budget `yaml:"budget,omitempty" json:"budget,omitzero"`
}

// Budget caps total tokens and/or total cost of one client. Cost is
// counted in the unit of the prices (say US dollars), per 1,000 tokens.
// Zero fields mean no cap.
type Budget struct {
	MaxTokens            int64   `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty"`
	MaxCost              float64 `yaml:"max_cost,omitempty" json:"max_cost,omitempty"`
	PromptPricePer1K     float64 `yaml:"prompt_price_per_1k,omitempty" json:"prompt_price_per_1k,omitempty"`
	CompletionPricePer1K float64 `yaml:"completion_price_per_1k,omitempty" json:"completion_price_per_1k,omitempty"`
}

// Cost is the price of the given token counts.
func (b Budget) Cost(prompt, completion int64) float64 {
	return float64(prompt)/1000*b.PromptPricePer1K + float64(completion)/1000*b.CompletionPricePer1K
}

// FieldError is a problem with one key of an Endpoint; Key is the YAML
// key (e.g. "base_url", "budget.max_cost") so a recipe can point at the
// line.
type FieldError struct {
	Endpoint string
	Key      string
	Msg      string
}

func (e *FieldError) Error() string {
	if e.Endpoint != "" {
		return fmt.Sprintf("endpoint %s: %s: %s", e.Endpoint, e.Key, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks the endpoint's values and returns the first problem as
// a *FieldError naming its key. It never quotes api_key_env when that
// looks like something other than a variable name (it might be a key
// pasted by mistake).
func (e Endpoint) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &FieldError{Endpoint: safeName(e.Name), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if e.Name == "" {
		return bad("name", "required")
	}
	if !nameRE.MatchString(e.Name) {
		return bad("name", "use letters, digits, '_', '.' and '-' only")
	}
	kind := e.kind()
	switch kind {
	case KindOpenAI, KindAzure, KindOther:
	default:
		return bad("kind", "%q is not one of openai, azure, other", e.Kind)
	}
	if e.BaseURL == "" && kind != KindOpenAI {
		return bad("base_url", "required for kind %s", kind)
	}
	if e.BaseURL != "" {
		u, err := url.Parse(e.BaseURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return bad("base_url", "want an http(s) URL such as http://localhost:8000/v1")
		case u.User != nil:
			return bad("base_url", "must not contain credentials; put the key in the variable named by api_key_env")
		case u.RawQuery != "" || u.Fragment != "":
			return bad("base_url", "must not have a query or fragment")
		}
	}
	if e.APIKeyEnv != "" && !envVarRE.MatchString(e.APIKeyEnv) {
		return bad("api_key_env", "must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself")
	}
	if e.APIKeyEnv == "" && kind != KindOther {
		return bad("api_key_env", "required for kind %s: name the environment variable that holds the API key", kind)
	}
	if kind == KindAzure {
		if e.Deployment == "" {
			return bad("deployment", "required for kind azure")
		}
		if e.APIVersion == "" {
			return bad("api_version", "required for kind azure (e.g. 2024-10-21)")
		}
	} else {
		if e.Deployment != "" {
			return bad("deployment", "only for kind azure")
		}
		if e.APIVersion != "" {
			return bad("api_version", "only for kind azure")
		}
	}
	if e.Model == "" && kind != KindAzure {
		return bad("model", "required")
	}
	if e.Timeout < 0 {
		return bad("timeout", "must not be negative")
	}
	if e.MaxConcurrency < 0 {
		return bad("max_concurrency", "must not be negative")
	}
	if e.RequestsPerMinute < 0 {
		return bad("requests_per_minute", "must not be negative")
	}
	if e.TokensPerMinute < 0 {
		return bad("tokens_per_minute", "must not be negative")
	}
	if e.MaxRetries != nil && (*e.MaxRetries < 0 || *e.MaxRetries > 50) {
		return bad("max_retries", "must be between 0 and 50")
	}
	b := e.Budget
	switch {
	case b.MaxTokens < 0:
		return bad("budget.max_tokens", "must not be negative")
	case b.MaxCost < 0:
		return bad("budget.max_cost", "must not be negative")
	case b.PromptPricePer1K < 0:
		return bad("budget.prompt_price_per_1k", "must not be negative")
	case b.CompletionPricePer1K < 0:
		return bad("budget.completion_price_per_1k", "must not be negative")
	case b.MaxCost > 0 && b.PromptPricePer1K == 0 && b.CompletionPricePer1K == 0:
		return bad("budget.max_cost", "needs prompt_price_per_1k and/or completion_price_per_1k")
	}
	return nil
}

// safeName is the name for messages: as given when it is a valid name,
// otherwise a placeholder.
func safeName(n string) string {
	if nameRE.MatchString(n) {
		return n
	}
	return "(unnamed)"
}

func (e Endpoint) kind() Kind {
	if e.Kind == "" {
		return KindOpenAI
	}
	return Kind(strings.ToLower(string(e.Kind)))
}

func (e Endpoint) baseURL() string {
	if e.BaseURL == "" && e.kind() == KindOpenAI {
		return DefaultOpenAIURL
	}
	return strings.TrimRight(e.BaseURL, "/")
}

func (e Endpoint) model() string {
	if e.Model == "" && e.kind() == KindAzure {
		return e.Deployment
	}
	return e.Model
}

// keyEnv is APIKeyEnv when it is a variable name, else a placeholder (so
// a key pasted into api_key_env never reaches a message).
func (e Endpoint) keyEnv() string {
	if e.APIKeyEnv == "" || envVarRE.MatchString(e.APIKeyEnv) {
		return e.APIKeyEnv
	}
	return "(invalid api_key_env)"
}

// String names the endpoint for error messages:
// `endpoint judge (gpt-4o-mini at https://api.openai.com/v1)`.
func (e Endpoint) String() string {
	m := e.model()
	if e.kind() == KindAzure {
		m = "deployment " + e.Deployment
	}
	return fmt.Sprintf("endpoint %s (%s at %s)", safeName(e.Name), m, e.baseURL())
}

// Describe is a one-line summary for "stage X needs …" messages: which
// endpoint and which environment variable, e.g.
// `endpoint judge (gpt-4o-mini at https://api.openai.com/v1) with the API key in $OPENAI_API_KEY`.
func (e Endpoint) Describe() string {
	if e.APIKeyEnv == "" {
		return e.String() + " without an API key"
	}
	return e.String() + " with the API key in $" + e.keyEnv()
}

// ErrMissingKey is matched (errors.Is) by the error New returns when the
// endpoint's API key variable is unset or empty.
var ErrMissingKey = errors.New("API key not set")

// MissingKeyError says which variable to set for which endpoint.
type MissingKeyError struct{ Endpoint Endpoint }

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("%s: $%s is not set: export %s=… to enable it", e.Endpoint.String(), e.Endpoint.keyEnv(), e.Endpoint.keyEnv())
}

// Is makes errors.Is(err, ErrMissingKey) true.
func (e *MissingKeyError) Is(target error) bool { return target == ErrMissingKey }

// CheckKey reports whether the API key variable is set (nil for
// endpoints that need no key), without reading the key into anything
// that outlives the call. Recipe validation uses it to say which stages
// will be skipped.
func (e Endpoint) CheckKey() error {
	if e.APIKeyEnv == "" {
		return nil
	}
	if os.Getenv(e.APIKeyEnv) == "" {
		return &MissingKeyError{Endpoint: e}
	}
	return nil
}

// Duration is a time.Duration written as "30s", "2m" or a bare number of
// seconds in YAML and JSON.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return Duration(f * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want e.g. 30s, 2m or a number of seconds", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML reads "30s", "2m" or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 30s")
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string such as "30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalJSON reads "30s", "2m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("want a duration such as \"30s\" or a number of seconds")
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
