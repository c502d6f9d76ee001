// Helpers shared by the test files (node --test runs this file too: it has no tests).

import * as llmr from '../index.js';

/**
 * A plugin whose component memory can be watched, and a switch that traps the next call of an
 * export: `watch.armed = true` traps the next classify, `watch.armed = '#trim'` the next call
 * of the export whose name ends so (in whichever instance it comes).
 */
export function watchedPlugin() {
  const watch = { memory: null, instances: 0, armed: false };
  const trap = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 116, 0, 0, 10, 5, 1, 3, 0, 0, 11,
  ]))).exports.t;
  watch.plugin = new llmr.Plugin({
    instantiateCore(module, imports) {
      const core = new WebAssembly.Instance(module, imports);
      if (!(core.exports.memory instanceof WebAssembly.Memory)) return core;
      watch.memory = core.exports.memory;
      watch.instances += 1;
      const exports = { ...core.exports };
      for (const [name, real] of Object.entries(core.exports)) {
        if (typeof real !== 'function' || !name.startsWith('llm:resilience/')) continue;
        exports[name] = (...args) => {
          const armed = watch.armed === true ? '/classify@0.1.0#classify' : watch.armed;
          if (armed && name.endsWith(armed)) {
            watch.armed = false;
            trap();
          }
          return real(...args);
        };
      }
      return { exports };
    },
  });
  return watch;
}
