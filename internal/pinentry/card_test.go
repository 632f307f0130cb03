package pinentry

import (
	"errors"
	"strings"
	"testing"
)

func TestPINDialogTexts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      CardPrompt
		want   []string // in the description
		not    []string
		errTxt string
	}{
		{"first try", CardPrompt{Holder: "MARIO ROSSI", Program: "chromium", TriesLeft: 3},
			[]string{"chromium wants to sign with the CIE of MARIO ROSSI", "all 8 digits", "first 4", "last 4", "3 tries left."},
			[]string{"Last try"}, ""},
		{"unknown program and tries", CardPrompt{TriesLeft: -1},
			[]string{"A program wants to sign with your CIE", "all 8 digits"}, []string{"tries left", "try left"}, ""},
		{"after a wrong PIN", CardPrompt{Holder: "MARIO ROSSI", TriesLeft: 2, Reason: WrongPIN},
			[]string{"2 tries left."}, nil, "Wrong PIN: 2 tries left."},
		{"before the last try", CardPrompt{TriesLeft: 1, Reason: WrongPIN},
			[]string{"Last try: a wrong PIN now blocks the card", "PUK"}, []string{"1 try left."}, "Wrong PIN: 1 try left. The next wrong PIN blocks the card."},
		{"malformed entry", CardPrompt{TriesLeft: 3, Reason: Malformed},
			[]string{"3 tries left."}, nil, "The PIN is 8 digits and nothing else. That entry was not sent to the card: no try was used."},
		{"wrong PIN, counter unknown", CardPrompt{TriesLeft: -1, Reason: WrongPIN}, nil, nil, "Wrong PIN."},
		{"italiano", CardPrompt{Holder: "MARIO ROSSI", TriesLeft: 2, Reason: WrongPIN, Lang: "it"},
			[]string{"Un programma vuole firmare con la CIE di MARIO ROSSI", "tutte le 8 cifre", "2 tentativi rimasti."}, nil,
			"PIN errato: 2 tentativi rimasti."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.PINDialog()
			for _, w := range tc.want {
				if !strings.Contains(d.Description, w) {
					t.Errorf("description lacks %q:\n%s", w, d.Description)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(d.Description, w) {
					t.Errorf("description has %q:\n%s", w, d.Description)
				}
			}
			if d.Error != tc.errTxt {
				t.Errorf("error text %q, want %q", d.Error, tc.errTxt)
			}
			if d.Timeout != DialogTimeout || d.Prompt == "" || d.OK == "" || d.Cancel == "" || d.Title == "" {
				t.Errorf("incomplete dialog %+v", d)
			}
		})
	}
}

func TestPINDialogOptions(t *testing.T) {
	d := CardPrompt{Holder: "MARIO ROSSI", TriesLeft: 1}.PINDialog()
	if len(d.Options) != 2 || d.Options[0] != (Option{"cie-tries-left", "1"}) || d.Options[1] != (Option{"cie-holder", "MARIO ROSSI"}) {
		t.Fatalf("options %+v", d.Options)
	}
	if d := (CardPrompt{TriesLeft: -1}).PINDialog(); len(d.Options) != 0 {
		t.Fatalf("options without holder or counter: %+v", d.Options)
	}
}

func TestLockedDialog(t *testing.T) {
	d := CardPrompt{Holder: "MARIO ROSSI"}.LockedDialog()
	for _, w := range []string{"MARIO ROSSI", "blocked", "PUK", "cie pin unblock"} {
		if !strings.Contains(d.Description, w) {
			t.Errorf("lacks %q: %s", w, d.Description)
		}
	}
}

func TestLanguage(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "en"},
		{map[string]string{"LANG": "it_IT.UTF-8"}, "it"},
		{map[string]string{"LANG": "it_IT.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "en"},
		{map[string]string{"LANG": "en_GB.UTF-8", "LC_ALL": "it_CH.UTF-8"}, "it"},
	} {
		if got := Language(env(tc.env)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.env, got, tc.want)
		}
	}
}

func TestFind(t *testing.T) {
	exe := map[string]bool{"/opt/cie/lib/cie-tray": true}
	onPath := map[string]string{}
	lookup := func(env map[string]string) Lookup {
		return Lookup{
			Getenv: func(k string) string { return env[k] },
			LookPath: func(name string) (string, error) {
				if p, ok := onPath[name]; ok {
					return p, nil
				}
				return "", errors.New("not found")
			},
			Executable: func(p string) bool { return exe[p] },
		}
	}
	desktop := map[string]string{"DISPLAY": ":0"}
	check := func(name string, p Program, ok bool, want string) {
		t.Helper()
		got := ""
		if ok {
			got = p.String()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	p, ok := Find("/opt/cie/lib", lookup(map[string]string{"CIE_PINENTRY": "/usr/local/bin/my-pinentry --flag x"}))
	check("CIE_PINENTRY", p, ok, "/usr/local/bin/my-pinentry --flag x")
	p, ok = Find("/opt/cie/lib", lookup(map[string]string{"CIE_PINENTRY": "none", "DISPLAY": ":0"}))
	check("CIE_PINENTRY=none", p, ok, "")
	p, ok = Find("/opt/cie/lib", lookup(desktop))
	check("next to the module", p, ok, "/opt/cie/lib/cie-tray pinentry")
	p, ok = Find("/opt/cie/lib", lookup(map[string]string{}))
	check("no graphical session", p, ok, "")
	onPath["pinentry"] = "/usr/bin/pinentry"
	p, ok = Find("/usr/lib/pkcs11", lookup(map[string]string{"WAYLAND_DISPLAY": "wayland-0"}))
	check("system pinentry", p, ok, "/usr/bin/pinentry")
	onPath["cie-tray"] = "/usr/bin/cie-tray"
	p, ok = Find("", lookup(desktop))
	check("cie-tray on PATH before the system pinentry", p, ok, "/usr/bin/cie-tray pinentry")
}
