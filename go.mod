module github.com/ciedesktop/cie-desktop

go 1.26.8

require (
	filippo.io/bigmod v0.1.0
	github.com/ebfe/scard v0.0.0-20241214075232-7af069cabc25
	golang.org/x/term v0.37.0
)

require golang.org/x/sys v0.38.0 // indirect
