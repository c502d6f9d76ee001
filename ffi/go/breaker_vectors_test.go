package llmresilience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// breakerVectorFile is tests/vectors/breaker.json (its format is in its "description").
type breakerVectorFile struct {
	Cases []breakerCase `json:"cases"`
}

type breakerCase struct {
	Name    string            `json:"name"`
	Config  json.RawMessage   `json:"config"`
	MaxKeys *int              `json:"max_keys"`
	Steps   []json.RawMessage `json:"steps"`
}

type breakerStep struct {
	NowMs   uint64          `json:"now_ms"`
	Op      string          `json:"op"`
	Key     string          `json:"key"`
	Permit  string          `json:"permit"`
	Outcome *vectorOutcome  `json:"outcome"`
	Expect  json.RawMessage `json:"expect"`
}

type vectorOutcome struct {
	Outcome      string  `json:"outcome"`
	Kind         string  `json:"kind"`
	RetryAfterMs *uint64 `json:"retry_after_ms"`
}

// TestBreakerVectors runs every case of tests/vectors/breaker.json through the Go API (the
// At-twins, at each step's now_ms) and prints "[go] breaker vectors: N passed, M failed".
func TestBreakerVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "tests", "vectors", "breaker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf breakerVectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	passed, failed := 0, 0
	for _, c := range vf.Cases {
		if err := runBreakerCase(c); err != nil {
			failed++
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		passed++
	}
	fmt.Printf("[go] breaker vectors: %d passed, %d failed\n", passed, failed)
	if passed+failed == 0 {
		t.Fatal("no cases in tests/vectors/breaker.json")
	}
}

// settingsFromConfig turns a vector's BreakerConfig JSON into Settings, the way a Go user
// would write it: a missing field is a zero (default), a null rule is a negative value.
func settingsFromConfig(raw json.RawMessage) (Settings, error) {
	var cfg struct {
		ConsecutiveFailures json.RawMessage `json:"consecutive_failures"`
		FailureRate         json.RawMessage `json:"failure_rate"`
		OpenDuration        *struct {
			BaseMs        uint64 `json:"base_ms"`
			GrowthPercent int    `json:"growth_percent"`
			MaxMs         uint64 `json:"max_ms"`
			UseServerHint *bool  `json:"use_server_hint"`
		} `json:"open_duration"`
		HalfOpenProbes    int      `json:"half_open_probes"`
		HalfOpenSuccesses int      `json:"half_open_successes"`
		MaxProbeWaitMs    uint64   `json:"max_probe_wait_ms"`
		CountedKinds      []string `json:"counted_kinds"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Settings{}, err
	}
	ms := func(v uint64) time.Duration { return time.Duration(v) * time.Millisecond }
	var s Settings
	switch string(cfg.ConsecutiveFailures) {
	case "":
	case "null":
		s.ConsecutiveFailures = -1
	default:
		if err := json.Unmarshal(cfg.ConsecutiveFailures, &s.ConsecutiveFailures); err != nil {
			return s, err
		}
	}
	switch string(cfg.FailureRate) {
	case "":
	case "null":
		s.FailureRatePercent = -1
	default:
		var rate struct {
			Window *struct {
				Type  string `json:"type"`
				Calls int    `json:"calls"`
				Ms    uint64 `json:"ms"`
			} `json:"window"`
			MinCalls       int    `json:"min_calls"`
			FailurePercent int    `json:"failure_percent"`
			SlowCallMs     uint64 `json:"slow_call_ms"`
			SlowPercent    int    `json:"slow_percent"`
		}
		if err := json.Unmarshal(cfg.FailureRate, &rate); err != nil {
			return s, err
		}
		if rate.Window != nil {
			if rate.Window.Type == "time" {
				s.FailureRateWindow = ms(rate.Window.Ms)
			} else {
				s.FailureRateWindowCalls = rate.Window.Calls
			}
		}
		s.FailureRateMinCalls = rate.MinCalls
		s.FailureRatePercent = rate.FailurePercent
		s.SlowCall = ms(rate.SlowCallMs)
		s.SlowCallPercent = rate.SlowPercent
	}
	if o := cfg.OpenDuration; o != nil {
		s.OpenTimeout = ms(o.BaseMs)
		s.OpenTimeoutGrowthPercent = o.GrowthPercent
		s.MaxOpenTimeout = ms(o.MaxMs)
		s.IgnoreServerHint = o.UseServerHint != nil && !*o.UseServerHint
	}
	s.HalfOpenProbes = cfg.HalfOpenProbes
	s.HalfOpenSuccesses = cfg.HalfOpenSuccesses
	s.MaxProbeWait = ms(cfg.MaxProbeWaitMs)
	if cfg.CountedKinds != nil {
		s.CountedKinds = []Kind{}
		for _, name := range cfg.CountedKinds {
			k, ok := kindByName(name)
			if !ok {
				return s, fmt.Errorf("unknown kind %q", name)
			}
			s.CountedKinds = append(s.CountedKinds, k)
		}
	}
	return s, nil
}

func kindByName(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

func outcomeFromVector(v *vectorOutcome) (Outcome, error) {
	if v == nil {
		return Outcome{}, fmt.Errorf("record step without an outcome")
	}
	switch v.Outcome {
	case "success":
		return Succeeded, nil
	case "ignored":
		return Ignored, nil
	case "failure":
		k, ok := kindByName(v.Kind)
		if !ok {
			return Outcome{}, fmt.Errorf("unknown kind %q", v.Kind)
		}
		o := Failed(k)
		if v.RetryAfterMs != nil {
			o.HasRetryAfter = true
			o.RetryAfter = time.Duration(*v.RetryAfterMs) * time.Millisecond
		}
		return o, nil
	}
	return Outcome{}, fmt.Errorf("unknown outcome %q", v.Outcome)
}

func transitionValue(t Transition) any {
	if !t.Changed {
		return nil
	}
	return map[string]any{"from": t.From.String(), "to": t.To.String()}
}

func admissionValue(p Permit, err error) (any, error) {
	if err == nil {
		return map[string]any{"admitted": true, "probe": p.Probe()}, nil
	}
	oe, ok := err.(*OpenError)
	if !ok {
		return nil, err
	}
	var retry any
	if oe.HasRetryIn {
		retry = oe.RetryIn.Milliseconds()
	}
	return map[string]any{"admitted": false, "state": oe.State.String(), "retry_in_ms": retry}, nil
}

func countsValue(c Counts) any {
	return map[string]any{
		"state":                c.State.String(),
		"window_calls":         c.WindowCalls,
		"window_failures":      c.WindowFailures,
		"window_slow":          c.WindowSlow,
		"consecutive_failures": c.ConsecutiveFailures,
		"probes_in_flight":     c.ProbesInFlight,
		"probe_successes":      c.ProbeSuccesses,
		"times_opened":         c.TimesOpened,
		"rejected":             c.Rejected,
		"generation":           c.Generation,
	}
}

// matchesExpect: every field expect names has the same value in got (recursively for
// objects); other values must be equal. got is normalised through JSON first.
func matchesExpect(expect, got any) bool {
	e, eok := expect.(map[string]any)
	g, gok := got.(map[string]any)
	if eok && gok {
		for k, v := range e {
			if !matchesExpect(v, g[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(expect, got)
}

func runBreakerCase(c breakerCase) error {
	s, err := settingsFromConfig(c.Config)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var b *Breaker
	var set *BreakerSet
	if c.MaxKeys != nil {
		set, err = NewBreakerSet(s, *c.MaxKeys)
	} else {
		b, err = NewBreaker(s)
	}
	if err != nil {
		return err
	}
	defer func() {
		if b != nil {
			b.Close()
		}
		if set != nil {
			set.Close()
		}
	}()
	permits := map[string]Permit{}
	for i, raw := range c.Steps {
		var st breakerStep
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		now := timeOfMillis(st.NowMs)
		var got any
		switch st.Op {
		case "acquire":
			var p Permit
			if set != nil {
				p, err = set.AcquireAt(st.Key, now)
			} else {
				p, err = b.AcquireAt(now)
			}
			if err == nil && st.Permit != "" {
				permits[st.Permit] = p
			}
			if got, err = admissionValue(p, err); err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		case "record":
			o, err := outcomeFromVector(st.Outcome)
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			p, ok := permits[st.Permit]
			if !ok {
				return fmt.Errorf("step %d: no permit %q", i, st.Permit)
			}
			var rec Recorded
			if set != nil {
				rec, err = set.RecordAt(st.Key, p, o, now)
			} else {
				rec, err = b.RecordAt(p, o, now)
			}
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			recorded := "counted"
			if rec.Stale {
				recorded = "stale"
			}
			got = map[string]any{"recorded": recorded, "transition": transitionValue(rec.Transition)}
		case "state":
			if b == nil {
				return fmt.Errorf("step %d: state needs a single breaker", i)
			}
			got = b.StateAt(now).String()
		case "counts":
			if b == nil {
				return fmt.Errorf("step %d: counts needs a single breaker", i)
			}
			got = countsValue(b.CountsAt(now))
		case "force_open", "disable", "reset":
			if b == nil {
				return fmt.Errorf("step %d: switches need a single breaker", i)
			}
			var tr Transition
			switch st.Op {
			case "force_open":
				tr, err = b.ForceOpenAt(now)
			case "disable":
				tr, err = b.DisableAt(now)
			default:
				tr, err = b.ResetAt(now)
			}
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			got = transitionValue(tr)
		case "snapshot_restore":
			if b != nil {
				snap, err := b.Snapshot()
				if err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
				b.Close()
				if b, err = RestoreBreaker(snap); err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
			} else {
				snap, err := set.Snapshot()
				if err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
				set.Close()
				if set, err = RestoreBreakerSet(snap); err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
			}
			continue
		case "keys":
			if set == nil {
				return fmt.Errorf("step %d: keys needs a set", i)
			}
			keys, err := set.Keys()
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			got = keys
		default:
			return fmt.Errorf("step %d: unknown op %q", i, st.Op)
		}
		// Normalise got through JSON so that numbers compare as the expectation's do.
		text, err := json.Marshal(got)
		if err != nil {
			return err
		}
		var gotValue, expectValue any
		if err := json.Unmarshal(text, &gotValue); err != nil {
			return err
		}
		if err := json.Unmarshal(st.Expect, &expectValue); err != nil {
			return fmt.Errorf("step %d: expect: %w", i, err)
		}
		if !matchesExpect(expectValue, gotValue) {
			return fmt.Errorf("step %d (%s at %d ms): expected %s, got %s", i, st.Op, st.NowMs, st.Expect, text)
		}
	}
	return nil
}
