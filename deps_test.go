// Package ciedesktop_test keeps the dependency rules of the layered design
// (docs/architecture.md): arrows point down only, only the PC/SC layer and the
// PKCS#11 C ABI use cgo, and the pure core never reaches them.
package ciedesktop_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ciedesktop/cie-desktop"

// rank orders the layers: a package may import project packages of a strictly
// lower rank only. Packages not listed (cmd/*, tests) may import anything.
var rank = map[string]int{
	"apdu":               0,
	"tlv":                0,
	"internal/rotlog":    0, // bounded log files: imports nothing of ours
	"sm":                 1,
	"pcsc":               1,
	"cie":                2,
	"certcache":          3,
	"internal/ciesim":    2,
	"pkcs11":             4,
	"sign":               4,
	"internal/testbench": 5,
	"tray":               6,
}

// cgoAllowed lists the packages that may import "C".
var cgoAllowed = map[string]bool{
	"pcsc":               true,
	"pkcs11/cabi":        true,
	"cmd/cie-pkcs11":     true,
	"internal/testbench": false,
}

// pure lists the core packages that must build with CGO_ENABLED=0 and so must
// never reach pcsc or any cgo package.
var pure = []string{"apdu", "tlv", "sm", "cie", "certcache", "pkcs11", "sign", "internal/ciesim"}

// forbidden lists pairs that the ranks alone would allow but the design forbids.
var forbidden = map[string][]string{
	"internal/ciesim": {"cie"},  // the simulated card is an independent reading of the spec
	"pkcs11":          {"pcsc"}, // slots come through an interface
	"pcsc":            {"sm", "tlv", "cie"},
}

type pkgInfo struct {
	path    string
	imports []string
	cgo     bool
}

func listPackages(t *testing.T, env ...string) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{len .CgoFiles}}`, "./...")
	cmd.Env = append(cmd.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkgInfo{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(parts[0], module), "/")
		p := pkgInfo{path: rel, cgo: parts[2] != "0"}
		for _, imp := range strings.Fields(parts[1]) {
			if imp == "C" {
				p.cgo = true
				continue
			}
			if strings.HasPrefix(imp, module+"/") {
				p.imports = append(p.imports, strings.TrimPrefix(imp, module+"/"))
			}
		}
		pkgs[rel] = p
	}
	return pkgs
}

// layerOf returns the ranked layer a package belongs to ("cie/internal/x" → "cie").
func layerOf(p string) (string, bool) {
	best := ""
	for l := range rank {
		if (p == l || strings.HasPrefix(p, l+"/")) && len(l) > len(best) {
			best = l
		}
	}
	return best, best != ""
}

func TestDependencyRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 4 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		from, ranked := layerOf(p.path)
		if p.cgo && !cgoAllowed[p.path] {
			t.Errorf("%s uses cgo; only %v may", p.path, keys(cgoAllowed))
		}
		for _, imp := range p.imports {
			to, ok := layerOf(imp)
			if !ok || !ranked || to == from {
				continue
			}
			if rank[to] >= rank[from] {
				t.Errorf("%s (layer %s) imports %s (layer %s): arrows must point down", p.path, from, imp, to)
			}
			for _, f := range forbidden[from] {
				if to == f {
					t.Errorf("%s must not import %s", p.path, imp)
				}
			}
		}
	}
}

// TestPureCore checks that the core packages' transitive dependencies contain
// no cgo package, so they build with CGO_ENABLED=0.
func TestPureCore(t *testing.T) {
	for _, p := range pure {
		cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{len .CgoFiles}}`, "./"+p)
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
		out, err := cmd.Output()
		if err != nil {
			if strings.Contains(err.Error(), "exit status") && !exists(p) {
				continue // the package is not written yet
			}
			t.Fatalf("go list -deps ./%s: %v", p, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[1] != "0" && f[0] != "runtime/cgo" && strings.HasPrefix(f[0], module) {
				t.Errorf("core package %s depends on cgo package %s", p, f[0])
			}
			if len(f) == 2 && f[0] == "github.com/ebfe/scard" {
				t.Errorf("core package %s depends on %s", p, f[0])
			}
		}
	}
}

func exists(p string) bool {
	return exec.Command("go", "list", "./"+p).Run() == nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	return out
}
