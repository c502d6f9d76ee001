// Command llmr-go-worker runs the Go AI worker (package worker) against an OpenRouter-compatible
// server: the mock (examples/mock-openrouter) by default, or the real OpenRouter with
// -base-url https://openrouter.ai and a real key in the environment. SIGINT or SIGTERM starts
// the graceful shutdown: no new jobs, in-flight jobs get the policy's grace, the rest is
// persisted to -state and resumed by the next start.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	worker "github.com/llm-resilience/llm-resilience/examples/go-worker"
)

func main() {
	os.Exit(run())
}

func run() int {
	baseURL := flag.String("base-url", "", "OpenRouter root: the mock's http://127.0.0.1:PORT, or https://openrouter.ai (required)")
	policyPath := flag.String("policy", "examples/scenarios/policy.json", "policy file")
	eventsPath := flag.String("events", "", "write JSON Lines events to this file (\"-\": stdout; default: none)")
	stateDir := flag.String("state", "", "write-ahead journal directory (mode 0700): accepted and finished jobs and breaker/limiter/credit snapshots, so a restart after a shutdown or a crash resumes the unfinished jobs and answers none twice")
	keyEnv := flag.String("key-env", "OPENROUTER_API_KEY", "environment variable holding the API key (the mock accepts any non-empty key)")
	naive := flag.Bool("naive", false, "run the naive baseline policy instead of ours")
	seed := flag.Uint64("seed", 0, "retry jitter seed (mixed with each job id)")
	flag.Parse()
	if *baseURL == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: llmr-go-worker -base-url URL [-policy FILE] [-events FILE] [-state DIR] [-key-env NAME] [-naive]")
		return 2
	}
	key := os.Getenv(*keyEnv)
	if key == "" {
		fmt.Fprintf(os.Stderr, "llmr-go-worker: $%s is empty (for the mock any value works, e.g. %s=mock)\n", *keyEnv, *keyEnv)
		return 2
	}
	policy, err := worker.LoadPolicy(*policyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmr-go-worker:", err)
		return 2
	}
	var events io.Writer
	switch *eventsPath {
	case "":
	case "-":
		events = os.Stdout
	default:
		f, err := os.Create(*eventsPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "llmr-go-worker:", err)
			return 1
		}
		defer f.Close()
		events = f
	}
	w, err := worker.New(worker.Options{BaseURL: *baseURL, Key: key, Policy: policy, Naive: *naive,
		Events: events, StateDir: *stateDir, Seed: *seed})
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmr-go-worker:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := w.Run(ctx)
	if res.Jobs == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "llmr-go-worker:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "[go-worker] %s: jobs %d (resumed %d, duplicates dropped %d), answered %d, failed %d %v, held %d, persisted %d, lost %d\n",
		res.Scenario, res.Jobs, res.Resumed, res.Duplicates, res.Answered, res.Failed, res.FailedByKind, res.Held, res.Persisted, res.Lost)
	if res.TornBytes > 0 {
		fmt.Fprintf(os.Stderr, "[go-worker] the journal's last %d bytes were a torn record (a crash mid-append): ignored\n", res.TornBytes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmr-go-worker:", err)
		return 1
	}
	return 0
}
