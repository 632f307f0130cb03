package icon

//go:generate go run ./gen ../../installer/linux/desktop/icons

// LauncherSizes are the hicolor sizes of the application icon written for
// the Linux launcher (installer/linux/desktop/icons/hicolor/N×N/apps).
var LauncherSizes = []int{16, 22, 24, 32, 48, 64, 128, 256}

// LauncherName is the icon name of the .desktop files.
const LauncherName = "cie-desktop"
