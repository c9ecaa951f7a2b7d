import { api } from '../api.js';
import { h, replace, notice, table, badge, when } from '../dom.js';
import { current, session } from '../app.js';

const roleNames = ['SYSTEM_ADMIN', 'AUDITOR', 'VIEWER'];

/** Users, for administrators: add one, change a role, disable or enable. */
export async function usersPage(main, { ticket }) {
  const users = await api('GET', '/users');
  if (!current(ticket)) return;
  const message = h('div', { id: 'users-message', 'aria-live': 'polite' });

  async function change(user, body, what) {
    try {
      await api('PATCH', '/users/' + encodeURIComponent(user.username), body);
      await usersPage(main, { ticket });
      append(notice('good', what));
    } catch (error) {
      replace(message, notice('bad', error.message));
    }
  }
  const append = (node) => replace(document.getElementById('users-message') ?? message, node);

  const rows = users.map((user) => {
    const self = user.username === session.user.username;
    const role = h('select', { 'aria-label': 'Role of ' + user.username, disabled: self, 'data-role-of': user.username },
      roleNames.map((name) => h('option', { value: name, selected: name === user.role }, name)));
    role.addEventListener('change', () => change(user, { role: role.value }, user.username + ' is now ' + role.value + '.'));
    return {
      id: user.username,
      class: user.active ? '' : 'bad',
      cells: [
        h('strong', {}, user.username), user.full_name, user.email ?? '',
        role,
        user.active ? (user.locked_until ? badge('warn', 'locked until ' + when(user.locked_until)) : badge('good', 'active')) : badge('bad', 'disabled'),
        self ? h('span', { class: 'muted small' }, 'you') : h('button', {
          type: 'button', class: 'secondary', 'data-toggle-of': user.username,
          onclick: () => change(user, { active: !user.active }, user.username + (user.active ? ' is disabled: their sessions end now.' : ' is enabled.')),
        }, user.active ? 'Disable' : 'Enable'),
      ],
    };
  });

  const username = h('input', { id: 'new-username', required: true, pattern: '[A-Za-z0-9._@\\-]{1,64}', autocomplete: 'off' });
  const fullName = h('input', { id: 'new-full-name', required: true });
  const email = h('input', { id: 'new-email', type: 'email' });
  const role = h('select', { id: 'new-role' }, roleNames.map((name) => h('option', { value: name, selected: name === 'VIEWER' }, name)));
  const password = h('input', { id: 'new-password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const form = h('form', { class: 'inline', id: 'add-user' },
    h('label', { for: 'new-username' }, 'User name', username),
    h('label', { for: 'new-full-name' }, 'Full name (shown in signatures)', fullName),
    h('label', { for: 'new-email' }, 'E-mail', email),
    h('label', { for: 'new-role' }, 'Role', role),
    h('label', { for: 'new-password' }, 'Password', password),
    h('button', { type: 'submit', id: 'add-user-submit' }, 'Add user'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const added = await api('POST', '/users', { username: username.value, full_name: fullName.value, email: email.value || null, role: role.value, password: password.value });
      await usersPage(main, { ticket });
      append(notice('good', 'Added ', added.username, ' (', added.role, ').'));
    } catch (error) {
      replace(message, notice('bad', error.message));
    }
  });

  replace(main, h('h1', {}, 'Users'),
    message,
    h('div', { class: 'panel' }, table(['User', 'Full name', 'E-mail', 'Role', 'State', ''], rows, { id: 'users' }),
      h('p', { class: 'muted small' }, 'Users are never deleted or renamed: the audit trail names them. Disabling ends their sessions at once.')),
    h('div', { class: 'panel' }, h('h2', {}, 'Add a user'), form));
}
