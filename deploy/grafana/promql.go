// Package grafana holds the platform's Grafana dashboard (sluice.json)
// and reads the metric names its PromQL expressions use, so that a test
// can compare them with what the processes export.
package grafana

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Metrics returns the metric names (sorted, each once) that the
// dashboard's PromQL uses: every panel target's expression and every
// query variable's label_values(). A histogram's series keep their
// suffix (_bucket, _sum, _count).
func Metrics(dashboard []byte) ([]string, error) {
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr != "" {
					exprs = append(exprs, t.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range exprs {
		names, err := Names(e)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

type panel struct {
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a row's
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	// labelValues is Grafana's label_values(metric, label): its first
	// argument is a metric, its second a label.
	labelValues = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)[^,)]*(?:,\s*[A-Za-z_][A-Za-z0-9_]*)?\s*\)`)
)

// keywords are PromQL's words that are not metric names.
var keywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
}

// Names returns the metric names one PromQL expression (or a Grafana
// label_values() query) selects, in order of appearance.
func Names(expr string) ([]string, error) {
	if strings.Count(expr, "(") != strings.Count(expr, ")") {
		return nil, fmt.Errorf("expression %q: unbalanced parentheses", expr)
	}
	var out []string
	e := labelValues.ReplaceAllStringFunc(expr, func(m string) string {
		out = append(out, labelValues.FindStringSubmatch(m)[1])
		return ""
	})
	e = quoted.ReplaceAllString(e, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	for _, loc := range identifier.FindAllStringSubmatchIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		if loc[2] >= 0 { // a function call
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] == '$' || e[loc[0]-1] == '.' || isDigit(e[loc[0]-1])) {
			continue // a Grafana variable, or a number's exponent or fraction
		}
		if keywords[strings.ToLower(word)] {
			continue
		}
		out = append(out, word)
	}
	return out, nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }
