package pinentry

import (
	"errors"
	"slices"
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

	// Paths with spaces, as on Windows: quoted, or an existing file as a whole.
	p, ok = Find("", lookup(map[string]string{"CIE_PINENTRY": `"C:\Program Files\GnuPG\bin\pinentry.exe" --timeout 60`}))
	if !ok || p.Path != `C:\Program Files\GnuPG\bin\pinentry.exe` || !slices.Equal(p.Args, []string{"--timeout", "60"}) {
		t.Errorf("quoted path: %q %q %v", p.Path, p.Args, ok)
	}
	exe[`C:\Program Files\CIE Desktop\cie-tray.exe`] = true
	p, ok = Find("", lookup(map[string]string{"CIE_PINENTRY": ` C:\Program Files\CIE Desktop\cie-tray.exe `}))
	if !ok || p.Path != `C:\Program Files\CIE Desktop\cie-tray.exe` || len(p.Args) != 0 {
		t.Errorf("unquoted existing path with spaces: %q %q %v", p.Path, p.Args, ok)
	}
	p, ok = Find("", lookup(map[string]string{"CIE_PINENTRY": `"/opt/my pinentry`}))
	if !ok || p.Path != `"/opt/my pinentry` {
		t.Errorf("unclosed quote: %q %q %v, want the value kept whole so that starting it fails visibly", p.Path, p.Args, ok)
	}
}

func TestParseCommand(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // program then arguments; nil: an error
	}{
		{"/usr/bin/pinentry", []string{"/usr/bin/pinentry"}},
		{"  /usr/bin/pinentry-gtk-2 \t--display :0 ", []string{"/usr/bin/pinentry-gtk-2", "--display", ":0"}},
		{`"C:\Program Files\x.exe" a "b c"`, []string{`C:\Program Files\x.exe`, "a", "b c"}},
		{`'/opt/my app/pe' --title 'PIN "CIE"'`, []string{"/opt/my app/pe", "--title", `PIN "CIE"`}},
		{`C:\tools\pe.exe ""`, []string{`C:\tools\pe.exe`, ""}},
		{`a"b c"d`, []string{"ab cd"}},
		{`"unclosed`, nil},
		{"   ", nil},
		{`"" x`, nil},
	} {
		p, err := ParseCommand(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("ParseCommand(%q) = %q %q, want an error", tt.in, p.Path, p.Args)
			}
			continue
		}
		if err != nil || p.Path != tt.want[0] || !slices.Equal(p.Args, tt.want[1:]) {
			t.Errorf("ParseCommand(%q) = %q %q %v, want %q", tt.in, p.Path, p.Args, err, tt.want)
			continue
		}
		// String quotes what needs it, so that it parses back the same.
		back, err := ParseCommand(p.String())
		if err != nil || back.Path != p.Path || !slices.Equal(back.Args, p.Args) {
			t.Errorf("ParseCommand(%q.String() = %q) = %q %q %v", tt.in, p.String(), back.Path, back.Args, err)
		}
	}
}
