// The demo: two models from the example repository, exported with
// `ferroserve export --target web` into models/, run in this page by the WebAssembly build
// (vendor/ferroserve, copied from crates/wasm/npm by scripts/build-web-demo.sh).
import { Model, version } from './vendor/ferroserve/index.js';

const $ = (selector) => document.querySelector(selector);
const status = $('#status');

/** Mean milliseconds per call of `run`, over about 20 ms of calls (at least 5). */
function timeCalls(run) {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (calls < 5 || now - start < 20) {
    run();
    calls += 1;
    now = performance.now();
  }
  return (now - start) / calls;
}

const formatMs = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);

function showBars(list, names, probabilities, best) {
  list.replaceChildren(
    ...names.map((name, i) => {
      const item = document.createElement('li');
      item.className = i === best ? 'top' : '';
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(probabilities[i] * 100).toFixed(1)}%`;
      const value = document.createElement('span');
      value.textContent = probabilities[i].toFixed(3);
      const label = document.createElement('span');
      label.textContent = name;
      const track = document.createElement('span');
      track.className = 'track';
      track.append(bar);
      item.append(label, track, value);
      return item;
    }),
  );
}

// --- Iris: four measurements in, a species out. ---
const SPECIES = ['setosa', 'versicolor', 'virginica'];

function setUpIris(model) {
  const form = $('#iris-form');
  const update = () => {
    const values = [...form.querySelectorAll('input')].map((input) => {
      input.nextElementSibling.value = Number(input.value).toFixed(1);
      return Number(input.value);
    });
    const input = { input: Float32Array.from(values) };
    const out = model.predict(input);
    const label = Number(out.label.data[0]);
    $('#iris-class').textContent = SPECIES[label];
    showBars($('#iris-probabilities'), SPECIES, out.probabilities.data, label);
    $('#iris-latency').textContent = formatMs(timeCalls(() => model.predict(input)));
  };
  form.addEventListener('input', update);
  update();
}

// --- Digits: an 8x8 drawing (intensities 0..1, as scikit-learn's digits / 16) in, a digit out. ---
// The first digit of examples/oracles/digits_mlp/request.json, which the model calls a 2.
const EXAMPLE_DIGIT = [
  0, 0, 0.4375, 1, 0.875, 0.1875, 0, 0, 0, 0, 0.5625, 0.875, 0.6875, 0.9375, 0, 0,
  0, 0, 0.0625, 0.3125, 0, 0.9375, 0.3125, 0, 0, 0, 0, 0, 0, 1, 0.3125, 0,
  0, 0, 0, 0, 0.1875, 1, 0.25, 0, 0, 0, 0, 0.0625, 0.75, 0.875, 0.0625, 0,
  0, 0, 0.3125, 0.75, 1, 1, 0.875, 0.0625, 0, 0, 0.5, 1, 0.875, 0.625, 0.8125, 0.1875,
];

function setUpDigits(model) {
  const canvas = $('#digit-canvas');
  const context = canvas.getContext('2d');
  const cell = canvas.width / 8;
  const pixels = new Float32Array(64);

  const draw = () => {
    for (let i = 0; i < 64; i++) {
      const level = Math.round(pixels[i] * 255);
      context.fillStyle = `rgb(${level}, ${level}, ${level})`;
      context.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
    }
  };
  const predict = () => {
    draw();
    const input = { input: pixels };
    const out = model.predict(input);
    const digit = Number(out.label.data[0]);
    $('#digit-class').textContent = pixels.some((p) => p > 0) ? String(digit) : '…';
    showBars($('#digit-probabilities'), [...'0123456789'], out.probabilities.data, digit);
    $('#digit-latency').textContent = formatMs(timeCalls(() => model.predict(input)));
  };

  // A soft brush: the cell under the pointer gets most ink, its neighbours some.
  const paint = (event) => {
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * 8 - 0.5;
    const y = ((event.clientY - box.top) / box.height) * 8 - 0.5;
    for (let row = 0; row < 8; row++) {
      for (let col = 0; col < 8; col++) {
        const d2 = (col - x) ** 2 + (row - y) ** 2;
        if (d2 < 2.25) pixels[row * 8 + col] = Math.min(1, pixels[row * 8 + col] + 0.35 * Math.exp(-d2));
      }
    }
    predict();
  };
  let drawing = false;
  canvas.addEventListener('pointerdown', (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    paint(e);
  });
  canvas.addEventListener('pointermove', (e) => drawing && paint(e));
  canvas.addEventListener('pointerup', () => {
    drawing = false;
  });
  $('#digit-clear').addEventListener('click', () => {
    pixels.fill(0);
    predict();
  });
  $('#digit-example').addEventListener('click', () => {
    pixels.set(EXAMPLE_DIGIT);
    predict();
  });
  predict();
}

try {
  const [iris, digits] = await Promise.all([Model.fetch('models/iris_logreg/'), Model.fetch('models/digits_mlp/')]);
  $('#version').textContent = `ferroserve ${await version()} (${iris.engine} and ${digits.engine})`;
  setUpIris(iris);
  setUpDigits(digits);
  status.textContent = 'Ready.';
  status.dataset.state = 'ready';
} catch (error) {
  status.textContent = `Could not start: ${error.message}`;
  status.dataset.state = 'error';
  console.error(error);
}
