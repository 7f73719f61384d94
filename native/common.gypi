{
  # Shared compiler settings. Pass --sanitize=1 (node-gyp) / -Dsanitize=1 to build the
  # addon with ASan + UBSan.
  "variables": { "sanitize%": 0 },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                  "-fvisibility=hidden", "-fstack-protector-strong"],
    "cflags": ["-Wall", "-Wextra"],
    "ldflags": ["-pthread"],
    "configurations": {
      "Debug": { "cflags_cc": ["-O0", "-g"], "defines": ["NETPLANE_DEBUG=1"] },
      "Release": { "cflags_cc": ["-O2"] }
    },
    "conditions": [
      ["sanitize==1", {
        "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
        "ldflags": ["-fsanitize=address,undefined"]
      }],
      ["OS=='linux'", { "ldflags": ["-Wl,--exclude-libs,ALL"] }]
    ]
  }
}
