package sigma

import (
	"regexp"
	"slices"
	"strings"
)

// techniqueTag matches an ATT&CK technique tag (attack.t1071,
// attack.t1071.001), not a tactic or a group.
var techniqueTag = regexp.MustCompile(`^attack\.t[0-9]{4}(\.[0-9]{3})?$`)

// Families groups rules that judge one observation the same way, so a
// caller can count their matches as one line of evidence. Two rules are of
// one family when
//
//   - one names the other in its `related` section (derived, obsolete,
//     merged, renamed, similar: the author says they overlap), or
//   - they have the same logsource mapping, read exactly the same contract
//     fields (Rule.Fields) and share an ATT&CK technique tag: they ask the
//     same question of the same part of the event — say, "is this user
//     agent a C2 framework's?" from two lists that overlap — so one event
//     matching both is one observation, not two.
//
// Rules that read other fields (a user agent vs a query string) or
// conclude another technique stay apart: they are independent evidence.
// The relation is closed transitively. Families returns, index-aligned
// with rules, the family name of each rule: "sigma.family." followed by
// the smallest lower-cased id among its members, or "" for a rule alone in
// its family.
func Families(rules []*Rule) []string {
	parent := make([]int, len(rules))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		if ra, rb := find(a), find(b); ra != rb {
			parent[rb] = ra
		}
	}
	byID := map[string]int{}
	for i, r := range rules {
		if r.ID != "" {
			byID[strings.ToLower(r.ID)] = i
		}
	}
	byShape := map[string]int{}
	for i, r := range rules {
		for _, rel := range r.Related {
			if j, ok := byID[strings.ToLower(rel.ID)]; ok {
				union(i, j)
			}
		}
		mapping := ""
		if r.mapping != nil {
			mapping = r.mapping.Name
		}
		for _, t := range r.Tags {
			t = strings.ToLower(t)
			if !techniqueTag.MatchString(t) {
				continue
			}
			key := mapping + "\x00" + strings.Join(r.Fields, ",") + "\x00" + t
			if j, ok := byShape[key]; ok {
				union(i, j)
			} else {
				byShape[key] = i
			}
		}
	}
	members := map[int][]string{}
	for i, r := range rules {
		root := find(i)
		members[root] = append(members[root], strings.ToLower(r.ID))
	}
	out := make([]string, len(rules))
	for i := range rules {
		m := members[find(i)]
		if len(m) < 2 {
			continue
		}
		out[i] = "sigma.family." + slices.Min(m)
	}
	return out
}
