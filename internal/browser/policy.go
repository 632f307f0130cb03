package browser

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// DefaultPolicyFiles are the system-wide Firefox policy files: Firefox on
// Linux reads /etc/firefox/policies/policies.json first (Debian's
// firefox-esr included, then its distribution/policies.json).
var DefaultPolicyFiles = []string{"/etc/firefox/policies/policies.json"}

// policyDoc is a policies.json, with everything this package does not
// touch kept as is.
type policyDoc struct {
	top      map[string]json.RawMessage
	policies map[string]json.RawMessage
}

func readPolicy(path string) (*policyDoc, bool, error) {
	d := &policyDoc{top: map[string]json.RawMessage{}, policies: map[string]json.RawMessage{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the Firefox policies: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return d, true, nil
	}
	if err := json.Unmarshal(b, &d.top); err != nil {
		return nil, true, fmt.Errorf("reading the Firefox policies %s: %w", path, err)
	}
	if raw, ok := d.top["policies"]; ok {
		if err := json.Unmarshal(raw, &d.policies); err != nil {
			return nil, true, fmt.Errorf("reading the Firefox policies %s: %w", path, err)
		}
	}
	return d, true, nil
}

// devices is the SecurityDevices policy: {"Add": {name: path}, "Delete":
// [names]}, or the older form {name: path}, which Firefox still accepts.
type devices struct {
	legacy map[string]string
	add    map[string]string
	del    []string
	other  map[string]json.RawMessage
}

func (d *policyDoc) devices() (*devices, error) {
	sd := &devices{add: map[string]string{}, other: map[string]json.RawMessage{}}
	raw, ok := d.policies["SecurityDevices"]
	if !ok {
		return sd, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the SecurityDevices policy: %w", err)
	}
	_, hasAdd := m["Add"]
	_, hasDel := m["Delete"]
	if !hasAdd && !hasDel && len(m) > 0 {
		sd.legacy = map[string]string{}
		for k, v := range m {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("reading the SecurityDevices policy: %w", err)
			}
			sd.legacy[k] = s
		}
		return sd, nil
	}
	for k, v := range m {
		var err error
		switch k {
		case "Add":
			err = json.Unmarshal(v, &sd.add)
		case "Delete":
			err = json.Unmarshal(v, &sd.del)
		default:
			sd.other[k] = v
		}
		if err != nil {
			return nil, fmt.Errorf("reading the SecurityDevices policy: %w", err)
		}
	}
	return sd, nil
}

func (d *policyDoc) setDevices(sd *devices) error {
	var v any
	if sd.legacy != nil {
		v = sd.legacy
	} else {
		m := map[string]any{}
		for k, raw := range sd.other {
			m[k] = raw
		}
		if len(sd.add) > 0 {
			m["Add"] = sd.add
		}
		if len(sd.del) > 0 {
			m["Delete"] = sd.del
		}
		v = m
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing the SecurityDevices policy: %w", err)
	}
	d.policies["SecurityDevices"] = raw
	return nil
}

func (d *policyDoc) bytes() ([]byte, error) {
	p, err := json.Marshal(d.policies)
	if err != nil {
		return nil, err
	}
	d.top["policies"] = p
	b, err := json.MarshalIndent(d.top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// policyState reads the registration in a policies.json.
func policyState(path, module string) (State, string, error) {
	d, exists, err := readPolicy(path)
	if err != nil || !exists {
		return Absent, "", err
	}
	sd, err := d.devices()
	if err != nil {
		return 0, "", err
	}
	lib, ok := sd.add[ModuleName]
	if sd.legacy != nil {
		lib, ok = sd.legacy[ModuleName]
	}
	switch {
	case !ok:
		return NotRegistered, "", nil
	case module != "" && lib != module:
		return Stale, lib, nil
	}
	return Registered, lib, nil
}

// policyEdit changes a policies.json with fn and writes it when it
// changed, creating the file (0644) and its directory when missing.
func policyEdit(path string, create bool, fn func(*devices)) (bool, error) {
	d, exists, err := readPolicy(path)
	if err != nil {
		return false, err
	}
	if !exists && !create {
		return false, nil
	}
	sd, err := d.devices()
	if err != nil {
		return false, err
	}
	before, err := d.bytes()
	if err != nil {
		return false, err
	}
	fn(sd)
	if err := d.setDevices(sd); err != nil {
		return false, err
	}
	after, err := d.bytes()
	if err != nil {
		return false, err
	}
	if exists && bytes.Equal(before, after) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("creating the Firefox policies directory: %w", err)
	}
	return true, writeFile(path, after, 0o644)
}

// policyRegister adds the module to SecurityDevices (and takes it out of
// Delete, where an earlier unregister put it).
func policyRegister(path, module string) (bool, error) {
	return policyEdit(path, true, func(sd *devices) {
		if sd.legacy != nil {
			sd.legacy[ModuleName] = module
			return
		}
		sd.add[ModuleName] = module
		sd.del = slices.DeleteFunc(sd.del, func(n string) bool { return n == ModuleName })
	})
}

// policyUnregister removes the module from SecurityDevices and asks
// Firefox to delete it from the profiles it was added to (Delete), since
// a module added by policy stays in each profile's database.
func policyUnregister(path string) (bool, error) {
	return policyEdit(path, false, func(sd *devices) {
		if sd.legacy != nil {
			delete(sd.legacy, ModuleName)
			return
		}
		_, had := sd.add[ModuleName]
		delete(sd.add, ModuleName)
		if had && !slices.Contains(sd.del, ModuleName) {
			sd.del = append(sd.del, ModuleName)
		}
	})
}
