package terraform

import (
	"fmt"
	"strconv"
	"strings"
)

// Available reports whether something the catalog marks with avail (see
// the Availability grammar in catalog_data.go) exists in product
// ("terraform" or "tofu") at version ("1.5.7"). An unknown version or a
// malformed mark counts as available: completion then offers too much
// rather than hide what the binary has.
func Available(avail, product, version string) bool {
	as, err := parseAvailability(avail)
	if err != nil {
		return true
	}
	v, err := parseVersion(version)
	if err != nil {
		return true
	}
	return as.match(binaryID{product: product, version: v})
}

// binaryID is a product ("terraform" or "tofu") and its version.
type binaryID struct {
	product string
	version [3]int
}

type availAlt struct {
	product string
	op      string // "", ">=" or "<"
	version [3]int
}

type availability []availAlt

func parseAvailability(s string) (availability, error) {
	if s == "" {
		return nil, nil
	}
	var alts availability
	for _, part := range strings.Split(s, ",") {
		var a availAlt
		rest := ""
		switch i := strings.IndexAny(part, "<>="); {
		case i < 0:
			a.product = part
		case strings.HasPrefix(part[i:], ">="):
			a.product, a.op, rest = part[:i], ">=", part[i+2:]
		case strings.HasPrefix(part[i:], "<") && !strings.HasPrefix(part[i:], "<="):
			a.product, a.op, rest = part[:i], "<", part[i+1:]
		default:
			return nil, fmt.Errorf("availability %q: bad operator in %q", s, part)
		}
		if a.product != "terraform" && a.product != "tofu" {
			return nil, fmt.Errorf("availability %q: unknown product %q", s, a.product)
		}
		if a.op != "" {
			v, err := parseVersion(rest)
			if err != nil {
				return nil, fmt.Errorf("availability %q: %v", s, err)
			}
			a.version = v
		}
		alts = append(alts, a)
	}
	return alts, nil
}

func (as availability) match(id binaryID) bool {
	if as == nil {
		return true
	}
	for _, a := range as {
		if a.product != id.product {
			continue
		}
		c := compareVersions(id.version, a.version)
		if a.op == "" || (a.op == ">=" && c >= 0) || (a.op == "<" && c < 0) {
			return true
		}
	}
	return false
}

// parseVersion reads MAJOR.MINOR[.PATCH], ignoring a "-dev" style suffix.
func parseVersion(s string) ([3]int, error) {
	var v [3]int
	s, _, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, fmt.Errorf("bad version %q", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("bad version %q", s)
		}
		v[i] = n
	}
	return v, nil
}

func compareVersions(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
