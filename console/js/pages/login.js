import { api } from '../api.js';
import { h, replace, notice } from '../dom.js';

/** The login form; `done(user)` once the server has set the session cookie. */
export function loginPage(main, done) {
  const message = h('div', { id: 'login-message' });
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', id: 'login-submit' }, 'Log in');
  const form = h('form', { class: 'stack', id: 'login-form' },
    h('label', { for: 'username' }, 'User name', username),
    h('label', { for: 'password' }, 'Password', password),
    submit, message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(message);
    try {
      const answer = await api('POST', '/auth/session', { username: username.value, password: password.value });
      done({ username: answer.username, full_name: answer.full_name, role: answer.role });
    } catch (error) {
      const text = error.status === 401 ? 'Wrong user name or password.' : error.message;
      replace(message, notice('bad', text));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h('div', { class: 'login panel' },
    h('h1', {}, h('img', { src: '/console/icon.svg', alt: '', width: 28, height: 28 }), 'Bunker console'),
    h('p', { class: 'muted' }, 'Log in with your Bunker user. Five wrong passwords lock the account.'),
    form));
  username.focus();
}
