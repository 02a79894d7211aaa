package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// tensorError is one tensor's relative error.
type tensorError struct {
	Name string  `json:"name"`
	Rel  float64 `json:"rel"`
}

func (e tensorError) String() string {
	if e.Name == "" {
		return "-"
	}
	return fmt.Sprintf("%s %.1e", e.Name, e.Rel)
}

// runResult is reference.py's verdict on one run at one PyTorch thread
// count.
type runResult struct {
	Dir          string      `json:"dir"`
	Variant      string      `json:"variant"`
	ORTThreads   int         `json:"ort_threads"`
	TorchThreads int         `json:"torch_threads"`
	Identical    bool        `json:"identical_without_decisions"`
	Pass         bool        `json:"pass"`
	LossRel      float64     `json:"loss_rel"`
	Worst        tensorError `json:"worst"`
	Failures     int         `json:"failures"`
	FirstFailure tensorError `json:"first_failure"`
	Flips        struct {
		Relu    int `json:"relu"`
		MaxPool int `json:"maxpool"`
	} `json:"flips"`
}

// caseResult is result.json: one case directory's verdicts.
type caseResult struct {
	Case         string `json:"case"`
	Seed         uint64 `json:"seed"`
	Mutant       string `json:"mutant"`
	Conditioning struct {
		BNMinValues int `json:"bn_min_values"`
		// Torch32Same is PyTorch float32 against float64, both at ONNX
		// Runtime's decisions: the float32 error of a smooth computation,
		// what the gate's margin is measured against.
		Torch32Same tensorError `json:"torch32_same_decisions"`
		// Torch32Own is PyTorch float32 at its own decisions against
		// float64 at ONNX Runtime's: what the old gate compared.
		Torch32Own tensorError `json:"torch32_own_decisions"`
	} `json:"conditioning"`
	Runs []runResult `json:"runs"`
}

func (c caseResult) passes() bool {
	for _, r := range c.Runs {
		if !r.Pass {
			return false
		}
	}
	return len(c.Runs) > 0
}

// worst is the case's run to report: a failing one if any, and among
// those the one with the largest tensor error.
func (c caseResult) worst() runResult {
	var w runResult
	for i, r := range c.Runs {
		better := r.Worst.Rel > w.Worst.Rel
		if r.Pass != w.Pass {
			better = !r.Pass
		}
		if i == 0 || better {
			w = r
		}
	}
	return w
}

func readResults(dirs []string) ([]caseResult, error) {
	var out []caseResult
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "result.json"))
		if err != nil {
			return nil, fmt.Errorf("reference.py wrote no verdict for %s: %w", d, err)
		}
		var r caseResult
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s/result.json: %w", d, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func countFailing(rs []caseResult) int {
	n := 0
	for _, r := range rs {
		if !r.passes() {
			n++
		}
	}
	return n
}

func printGateTable(w io.Writer, rs []caseResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\ncase\tverdict\tloss rel\tworst tensor vs float64\tPyTorch float32, same decisions\tPyTorch float32, own decisions\tflips ReLU/MaxPool\tBN values/channel")
	for _, r := range rs {
		run := r.worst()
		verdict := "PASS"
		if !r.passes() {
			verdict = fmt.Sprintf("FAIL (%d tensors)", run.Failures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1e\t%s\t%s\t%s\t%d/%d\t%d\n", r.Case, verdict, run.LossRel, run.Worst,
			r.Conditioning.Torch32Same, r.Conditioning.Torch32Own, run.Flips.Relu, run.Flips.MaxPool, r.Conditioning.BNMinValues)
	}
	tw.Flush()
}

func printMutantTable(w io.Writer, rs []caseResult, descriptions map[string]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmutant\twhat is wrong\tcase\tverdict\tfailing tensors\tloss rel\tcaught by (worst tensor)")
	for _, r := range rs {
		run := r.worst()
		verdict := "caught"
		if r.passes() {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1e\t%s\n", r.Mutant, descriptions[r.Mutant], r.Case, verdict, run.Failures, run.LossRel, run.Worst)
	}
	tw.Flush()
}

// printSweepTable prints one line per case: how many of its runs passed
// and its worst tensor over all seeds and runs.
func printSweepTable(w io.Writer, rs []caseResult, runsPerSeed int) {
	type agg struct {
		seeds, runs, passed int
		worst               tensorError
		worstLoss           float64
		worstAt             string
		flips, maxFlips     int
		cond                tensorError
	}
	byCase := map[string]*agg{}
	var order []string
	for _, r := range rs {
		a := byCase[r.Case]
		if a == nil {
			a = &agg{}
			byCase[r.Case] = a
			order = append(order, r.Case)
		}
		a.seeds++
		if r.Conditioning.Torch32Same.Rel > a.cond.Rel {
			a.cond = r.Conditioning.Torch32Same
		}
		for _, run := range r.Runs {
			a.runs++
			if run.Pass {
				a.passed++
			}
			if run.Worst.Rel > a.worst.Rel {
				a.worst = run.Worst
				a.worstAt = fmt.Sprintf("seed %d, %s, ORT %d, torch %d", r.Seed, run.Variant, run.ORTThreads, run.TorchThreads)
			}
			a.worstLoss = max(a.worstLoss, run.LossRel)
			flips := run.Flips.Relu + run.Flips.MaxPool
			a.flips += flips
			a.maxFlips = max(a.maxFlips, flips)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\ncase\tseeds\truns passed\tworst loss rel\tworst tensor (where)\tworst PyTorch float32, same decisions\tdecision flips (total, max per run)\n")
	for _, name := range order {
		a := byCase[name]
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%.1e\t%s (%s)\t%s\t%d, %d\n", name, a.seeds, a.passed, a.runs, a.worstLoss, a.worst, a.worstAt, a.cond, a.flips, a.maxFlips)
	}
	tw.Flush()
	total, passed := 0, 0
	for _, a := range byCase {
		total += a.runs
		passed += a.passed
	}
	fmt.Fprintf(w, "%s\n%d of %d comparisons passed (%d runs per seed: graph variants x ONNX Runtime threads x PyTorch threads)\n",
		strings.Repeat("-", 40), passed, total, runsPerSeed)
}
