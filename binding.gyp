{
  "variables": {"sanitize%": 0},
  "target_defaults": {
    "conditions": [
      ["sanitize==1", {
        "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "ztctl_netns",
      "sources": ["src/lib/netns/native/netns.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "ztctl_hbone",
      "sources": ["src/lib/proxy/hbone/native/hbone.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "ztctl-cni",
      "type": "executable",
      "sources": ["src/lib/cni/plugin/ztctl-cni.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"],
      "conditions": [
        ["sanitize==1", {
          "cflags!": ["-fsanitize=address,undefined"],
          "ldflags!": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
