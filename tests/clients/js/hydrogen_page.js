// The Hydrogen web client as hydrogen-web mounts it (its platform, navigation, URL router and
// root view model), for tests/tests/hydrogen.rs. Bundled by hydrogen.mjs with esbuild; the
// homeserver it offers at login is the page's `hs` query parameter.
import {
  Platform,
  RootViewModel,
  createNavigation,
  createRouter,
  FeatureSet,
} from "hydrogen-view-sdk";

const assetPaths = {
  downloadSandbox: "/assets/download-sandbox.html",
  worker: "/assets/main.js",
  olm: {
    wasm: "/olm/olm.wasm",
    legacyBundle: "/olm/olm_legacy.js",
    wasmBundle: "/olm/olm.js",
  },
  serviceWorker: "/sw.js",
};

async function main() {
  const homeserver = new URLSearchParams(location.search).get("hs");
  const platform = new Platform({
    container: document.body,
    assetPaths,
    config: { defaultHomeServer: homeserver },
    options: { development: true },
  });
  await platform.init();
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const features = await FeatureSet.load(platform.settingsStorage);
  const vm = new RootViewModel({ platform, urlRouter, navigation, features });
  await vm.load();
  platform.createAndMountRootView(vm);
}

main().catch((e) => {
  console.error(`hydrogen page failed: ${e.stack || e}`);
});
